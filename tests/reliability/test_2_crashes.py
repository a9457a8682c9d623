"""Crashes: the worker SIGKILLed at random instants many times during one job, restarted each time.

Proves the journal's exactly-once: at the end every identity has exactly one computed voiceprint
and one usage record (read back from the API), every audio file was created and accepted once,
the manifest is in done/ (none lost, none left behind), and the report has one row per identity.
"""

from __future__ import annotations

import random
import signal
from pathlib import Path

import pytest

from tests.emulator_harness import running_emulator
from tests.jobwatch import journal_records, kinds, lease_stale, only_report, reports
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
    run_worker,
    start_worker,
    wait_for,
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
    queue = make_queue(area / "queue", ids, voice_s=VOICE_S)
    drop(queue, "crash.json", job_manifest(ids, MODEL))
    rng = random.Random(20261124)
    log = area / "worker.base.log"
    async with running_emulator(config=write_world(tmp_path / "emulator")) as emu:
        # The rate keeps the job long enough (≈7 requests per enrollment) to be hit many times.
        env = worker_env(queue, emu.base_url, rate_limit=rate)
        landed: list[int] = []  # journal records when each kill landed
        while len(landed) < kills:
            before = len(journal_records(queue))
            proc = await start_worker(env, log)
            # A random instant, measured in progress: after 1 to 15 new journal records of this
            # incarnation, so every kill hits a running job, however slowly the machine starts.
            target = before + rng.randint(1, 15)
            await wait_for(lambda t=target: len(journal_records(queue)) >= t, 120, "progress")
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            records = journal_records(queue)
            # It landed mid-job: nothing finished or reported, the job still active.
            assert not kinds(records, "job_finished") and not reports(queue), records[-3:]
            assert len(kinds(records, "outcome")) < n
            landed.append(len(records))
            # The dead worker's lease (ttl 1 s) must go stale before the next start takes over.
            await wait_for(lambda: lease_stale(queue, 1.0), 30, "the dead worker's lease stale")
        code = await run_worker(env, log)
        assert_no_crash(log)
        assert code == 0
        stats = await emu.stats()
        await assert_enrolled_once(emu.base_url, ids)

    assert landed == sorted(landed) and len(set(landed)) == kills  # each incarnation progressed
    assert_report_complete(only_report(queue), ids)
    created = stats["created"]
    assert created["identities"] == n and created["voiceprints"] == n
    assert created["computes"] == n  # one charge per identity
    assert created["audios"] == n and stats["uploads"]["accepted"] == n  # each file once
    # An upload cut by a kill may be attempted again, to the same audio (never a new one).
    assert len(stats["uploads"]["attempts_per_audio"]) == n
    [done] = names(queue / "done")  # the one manifest, finished
    assert done.startswith("crash-") and done.endswith(".json")
    assert names(queue / "inbox") == [] and names(queue / "failed") == []
    assert [p for p in (queue / "active").iterdir() if not p.name.startswith(".")] == []
