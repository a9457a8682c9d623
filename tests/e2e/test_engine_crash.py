"""kill -9 mid-job, as a real process, then restart: nothing lost, nothing done twice."""

from __future__ import annotations

import json
import random
import signal
import subprocess
from pathlib import Path

import anyio
import pytest

from tests.audiogen import write_audio
from tests.emulator_harness import running_emulator
from tests.jobwatch import journal_records, kinds, lease_stale, reports
from tests.support import WORKER, wait_for, worker_env

IDENTITIES = [f"crash-{i:02d}" for i in range(24)]


@pytest.mark.scenario
@pytest.mark.timeout(120)
async def test_sigkill_midjob_then_restart_completes_exactly_once(tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    for name in IDENTITIES:
        write_audio(queue / "audio" / f"{name}.wav", voice_s=5.0, samplerate=8000)
    (queue / "inbox").mkdir(parents=True)
    manifest = {"enrollments": [{"identity": i, "audios": [f"{i}.wav"]} for i in IDENTITIES]}
    (queue / "inbox" / "crash.json").write_text(json.dumps(manifest))
    rng = random.Random(5)

    async with running_emulator() as emulator:
        env = worker_env(
            queue,
            emulator.base_url,
            ENROLLER_RATE_LIMIT="60",
            ENROLLER_BURST="5",
            ENROLLER_LEASE_TTL="1",
        )
        argv = [*WORKER, "run", "--once"]
        kills: list[int] = []  # journal records when each kill landed
        for _ in range(3):
            before = len(journal_records(queue))
            proc = await anyio.open_process(argv, env=env, stderr=subprocess.DEVNULL)
            # Kill after this incarnation has journaled 1 to 12 new records: mid-step, at a
            # point set by progress, not by how fast the machine started the process.
            target = before + rng.randint(1, 12)
            await wait_for(lambda t=target: len(journal_records(queue)) >= t, 60, "progress")
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            records = journal_records(queue)
            # It landed mid-job: nothing finished, nothing reported, the job still active.
            assert not kinds(records, "job_finished") and not reports(queue), records[-3:]
            assert len(kinds(records, "outcome")) < len(IDENTITIES)
            kills.append(len(records))
            # The next start takes the job over once the dead worker's lease (ttl 1 s) is stale.
            await wait_for(lambda: lease_stale(queue, 1.0), 30, "the dead worker's lease stale")
        final = await anyio.run_process(argv, env=env, check=False)
        assert final.returncode == 0, final.stderr.decode()[-2000:]

        stats = await emulator.stats()
    assert kills == sorted(kills) and len(set(kills)) == 3  # each run made progress
    [report_path] = (queue / "reports").glob("crash-*.report.json")
    report = json.loads(report_path.read_text())
    rows = report["enrollments"]
    assert sorted(r["identity"] for r in rows) == IDENTITIES  # complete, one row each
    assert {r["outcome"] for r in rows} <= {"enrolled", "unchanged"}
    usage = report["usage"]
    assert usage["found"] == usage["expected"] and not usage["double_charged"]
    assert stats["created"]["identities"] == len(IDENTITIES)
    assert stats["created"]["voiceprints"] == len(IDENTITIES)
    assert stats["created"]["computes"] == len(IDENTITIES)  # one charge per identity
    assert stats["created"]["audios"] == len(IDENTITIES)  # each file uploaded once
    assert not list((queue / "inbox").iterdir()) and list((queue / "done").iterdir())


@pytest.mark.scenario
@pytest.mark.timeout(120)
async def test_a_torn_journal_tail_then_two_resumes_completes_exactly_once(tmp_path: Path) -> None:
    """kill -9 mid-append leaves half a line; the next start heals it and is killed again
    after its own progress; the third start finishes. Nothing lost, nothing done twice."""
    ids = IDENTITIES[:8]
    queue = tmp_path / "queue"
    for name in ids:
        write_audio(queue / "audio" / f"{name}.wav", voice_s=5.0, samplerate=8000)
    (queue / "inbox").mkdir(parents=True)
    manifest = {"enrollments": [{"identity": i, "audios": [f"{i}.wav"]} for i in ids]}
    (queue / "inbox" / "torn.json").write_text(json.dumps(manifest))
    async with running_emulator() as emulator:
        env = worker_env(queue, emulator.base_url, ENROLLER_RATE_LIMIT="40", ENROLLER_LEASE_TTL="1")
        argv = [*WORKER, "run", "--once"]
        for round_ in range(2):
            before = len(journal_records(queue))
            proc = await anyio.open_process(argv, env=env, stderr=subprocess.DEVNULL)
            await wait_for(lambda b=before: len(journal_records(queue)) >= b + 3, 60, "progress")
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            assert not reports(queue)  # landed mid-job
            [journal] = (queue / "active").glob("*/journal.jsonl")
            if round_ == 0:
                with journal.open("ab") as fh:  # what a kill in the middle of a write leaves
                    fh.write(b'{"kind": "computed", "key": "torn-')
            await wait_for(lambda: lease_stale(queue, 1.0), 30, "the dead worker's lease stale")
        final = await anyio.run_process(argv, env=env, check=False)
        assert final.returncode == 0, final.stderr.decode()[-2000:]
        stats = await emulator.stats()
    [report_path] = (queue / "reports").glob("torn-*.report.json")
    rows = json.loads(report_path.read_text())["enrollments"]
    assert sorted(r["identity"] for r in rows) == ids
    assert {r["outcome"] for r in rows} <= {"enrolled", "unchanged"}
    assert stats["created"]["computes"] == stats["created"]["voiceprints"] == len(ids)
    assert stats["created"]["audios"] == len(ids)
    assert list((queue / "failed").iterdir()) == []  # healed, not judged corrupt
