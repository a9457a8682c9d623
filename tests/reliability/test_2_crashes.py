"""Crashes: the worker SIGKILLed at random instants many times during one job, restarted each time.

Proves the journal's exactly-once: at the end every identity has exactly one computed voiceprint
and one usage record (read back from the API), every audio file was created and accepted once,
the manifest is in done/ (none lost, none left behind), and the report has one row per identity.
"""

from __future__ import annotations

import random
import signal
from pathlib import Path

import anyio
import pytest

from tests.emulator_harness import running_emulator
from tests.reliability.support import (
    assert_enrolled_once,
    assert_no_crash,
    assert_report_complete,
    drop,
    identities,
    job_manifest,
    make_queue,
    only_report,
    queue_files,
    run_worker,
    start_worker,
    worker_env,
    write_world,
)


@pytest.mark.parametrize(
    ("n", "kills", "rate"),
    [
        pytest.param(24, 3, 40, id="short"),
        pytest.param(200, 12, 60, id="full", marks=pytest.mark.slow),
    ],
)
@pytest.mark.timeout(420)
async def test_sigkill_at_random_instants_then_restart_exactly_once(
    n: int, kills: int, rate: int, area: Path, tmp_path: Path
) -> None:
    ids = identities("crash", n)
    queue = make_queue(area, ids)
    drop(queue, "crash.json", job_manifest(ids))
    rng = random.Random(20261124)
    log = area / "worker.log"
    async with running_emulator(config=write_world(tmp_path / "emulator")) as emu:
        # The rate keeps the job long enough (≈7 requests per enrollment) to be hit many times.
        env = worker_env(queue, emu.base_url, rate_limit=rate)
        killed = 0
        while killed < kills:
            proc = await start_worker(env, log)
            # Start-up (imports, GET /user, lease takeover) takes ~1 s; aim past and into it.
            await anyio.sleep(rng.uniform(0.3, 2.2))
            if proc.returncode is not None:
                break  # finished before this kill: the job was shorter than planned
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            killed += 1
            await anyio.sleep(1.1)  # the dead worker's lease (ttl 1 s) goes stale
        code = await run_worker(env, log)
        assert_no_crash(log)
        assert code == 0
        stats = await emu.stats()
        await assert_enrolled_once(emu.base_url, ids)

    assert killed >= kills, f"the job finished after {killed} kills; lower the rate"
    assert_report_complete(only_report(queue), ids)
    created = stats["created"]
    assert created["identities"] == n and created["voiceprints"] == n
    assert created["computes"] == n  # one charge per identity
    assert created["audios"] == n and stats["uploads"]["accepted"] == n  # each file once
    # An upload cut by a kill may be attempted again, to the same audio (never a new one).
    assert len(stats["uploads"]["attempts_per_audio"]) == n
    [done] = queue_files(queue, "done")  # the one manifest, finished
    assert done.startswith("crash-") and done.endswith(".json")
    assert queue_files(queue, "inbox") == [] and queue_files(queue, "failed") == []
    assert [p for p in (queue / "active").iterdir() if not p.name.startswith(".")] == []
