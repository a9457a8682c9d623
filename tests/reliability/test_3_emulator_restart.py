"""Emulator restart mid-job (SIGKILL, down for a while, same --state-file and port).

Proves that the worker rides out an API outage shorter than its retry budget
(ENROLLER_RETRY_MAX_TIME / ENROLLER_MAX_RETRIES, set here to cover the outage): it waits,
reconciles what was in flight when the API died, and completes with nothing done twice.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from tests.emulator_harness import emulator_process
from tests.jobwatch import only_report
from tests.reliability.support import (
    MODEL,
    VOICE_S,
    assert_enrolled_once,
    assert_report_complete,
    identities,
    worker_env,
    write_world,
)
from tests.support import assert_no_crash, drop, job_manifest, make_queue, names, start_worker


@pytest.mark.parametrize(
    ("n", "down_s"),
    [pytest.param(20, 2.0, id="short"), pytest.param(120, 8.0, id="full", marks=pytest.mark.slow)],
)
@pytest.mark.timeout(300)
async def test_worker_waits_for_restarted_emulator_and_completes(
    n: int, down_s: float, area: Path, tmp_path: Path
) -> None:
    ids = identities("restart", n)
    queue = make_queue(area / "queue", ids, voice_s=VOICE_S)
    drop(queue, "restart.json", job_manifest(ids, MODEL))
    world = write_world(tmp_path / "emulator")
    state = tmp_path / "emulator" / "state.json"
    log = area / "worker.base.log"
    async with emulator_process(state_file=state, config=world) as emu:
        env = worker_env(
            queue,
            emu.base_url,
            rate_limit=40,
            max_retries=40,  # backoff is capped at 10 s: 40 retries outlast the outage
            retry_max_time=4 * down_s + 30,
        )
        worker = await start_worker(env, log)
        with anyio.fail_after(60):
            while True:  # polling the emulator over HTTP: there is no event to wait on
                before = await emu.stats()
                # ≈7 requests per enrollment: kill about a third of the way through.
                if before["requests"]["total"] >= 2 * n:
                    break
                await anyio.sleep(0.02)
        emu.kill()  # mid-job, no goodbye; acknowledged effects are in the state file
        await emu.wait()
        await anyio.sleep(down_s)
        assert worker.returncode is None  # still waiting, not given up
        await emu.restart()  # same port, same state file
        code = await worker.wait()
        assert_no_crash(log)
        assert code == 0
        await assert_enrolled_once(emu.base_url, ids)
        after = await emu.stats()  # since the restart only

    assert_report_complete(only_report(queue), ids)
    assert before["created"]["computes"] < n  # the kill really cut the job
    assert after["created"]["computes"] <= n - before["created"]["computes"]  # none twice
    assert len(names(queue / "done")) == 1 and names(queue / "failed") == []
