"""Emulator restart mid-job (SIGKILL, down until the worker has backed off through several
refusals, then the same --state-file and port).

Proves that the worker rides out an API outage shorter than its retry budget
(ENROLLER_RETRY_MAX_TIME / ENROLLER_MAX_RETRIES, set here to cover the outage): it waits,
reconciles what was in flight when the API died, and completes with nothing done twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
from tests.support import (
    assert_no_crash,
    drop,
    job_manifest,
    make_queue,
    names,
    start_worker,
    wait_for,
)


def refused_in_a_row(log: Path, since: int) -> int:
    """The most attempts one request has had refused without an answer (no HTTP status: the
    API is not there), by the worker's `api.retry` lines written after byte `since`."""
    with log.open("rb") as f:
        f.seek(since)
        lines = f.read().split(b"\n")[:-1]  # whole lines only: the worker may be mid-write
    events = [json.loads(line) for line in lines if line.startswith(b"{")]
    retries = [e for e in events if e.get("event") == "api.retry" and e.get("status") is None]
    return max((e["attempt"] for e in retries), default=0)


@pytest.mark.parametrize(
    ("n", "refusals", "budget_s"),
    [
        pytest.param(20, 4, 40.0, id="short"),
        pytest.param(120, 7, 70.0, id="full", marks=pytest.mark.slow),
    ],
)
@pytest.mark.timeout(300)
async def test_worker_waits_for_restarted_emulator_and_completes(
    n: int, refusals: int, budget_s: float, area: Path, tmp_path: Path
) -> None:
    """The outage is placed by progress, not by time: the API stays down until one request has
    been refused `refusals` times in a row (the worker backing off through it), within a retry
    budget that outlasts it."""
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
            retry_max_time=budget_s,
        )
        worker = await start_worker(env, log)

        async def a_third_done() -> dict[str, Any] | None:  # polled over HTTP: no event
            stats = await emu.stats()
            # ≈7 requests per enrollment: kill about a third of the way through.
            return stats if stats["requests"]["total"] >= 2 * n else None

        before = await wait_for(a_third_done, 60, "a third of the job's requests")
        emu.kill()  # mid-job, no goodbye; acknowledged effects are in the state file
        await emu.wait()
        killed_at = log.stat().st_size
        await wait_for(
            lambda: refused_in_a_row(log, killed_at) >= refusals,
            budget_s,
            f"one request refused {refusals} times by the dead API",
        )
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
