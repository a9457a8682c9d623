"""A real `enroller run` SIGKILLed at each finishing step of a job (worker/base/crashpoints.py),
then started again: the report is whole and written once, the manifest lands in done/ once, and no
voiceprint is charged twice; the restart never redoes what the journal proves done.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import anyio
import pytest

from tests.emulator_harness import running_emulator
from tests.jobwatch import journal_records, kinds, lease_stale, reports
from tests.support import WORKER, drop, job_manifest, make_queue, names, wait_for, worker_env

ONCE = [*WORKER, "run", "--once"]
IDS = [f"fin-{i}" for i in range(4)]


@pytest.mark.parametrize("point", ["job.reported", "job.finished_record", "job.done"])
@pytest.mark.timeout(90)
async def test_a_crash_at_each_finishing_step_reports_once_and_charges_once(
    tmp_path: Path, point: str
) -> None:
    queue = make_queue(tmp_path / "queue", IDS)
    drop(queue, "finish.json", job_manifest(IDS))
    async with running_emulator() as emu:
        env = worker_env(queue, emu.base_url, ENROLLER_LEASE_TTL="1")
        crashed = await anyio.run_process(
            ONCE, env={**env, "ENROLLER_TEST_CRASH_AT": f"{point}@finish"}, check=False
        )
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr.decode()[-2000:]
        first = [json.loads(p.read_text()) for p in reports(queue)]
        assert len(first) == 1, first  # the crash points all come after the report write
        finished = kinds(journal_records(queue), "job_finished")
        if point == "job.reported":
            assert not finished and names(queue / "done") == []
        elif point == "job.finished_record":
            assert len(finished) == 1 and names(queue / "done") == []
        else:  # job.done: manifest in done/, job directory gone
            assert names(queue / "active") == [] and len(names(queue / "done")) == 1
        if names(queue / "active"):
            await wait_for(lambda: lease_stale(queue, 1.0), 30, "the dead worker's lease stale")

        emu.requests.clear()
        again = await anyio.run_process(ONCE, env=env, check=False)
        assert again.returncode == 0, again.stderr.decode()[-2000:]
        rerun = list(emu.requests)
        stats = await emu.stats()
    # One whole report (the atomic write), the same rows as before the crash, never two.
    [report_path] = reports(queue)
    report = json.loads(report_path.read_text())
    assert sorted(r["identity"] for r in report["enrollments"]) == IDS
    assert {r["outcome"] for r in report["enrollments"]} == {"enrolled"}
    assert report["enrollments"] == first[0]["enrollments"]
    assert len(names(queue / "done")) == 1
    assert names(queue / "active") == names(queue / "inbox") == names(queue / "failed") == []
    # Nothing charged twice, nothing redone: the restart sent no enrollment request at all.
    assert stats["created"]["computes"] == stats["created"]["voiceprints"] == len(IDS)
    assert stats["created"]["audios"] == len(IDS)
    assert not [r for r in rerun if r.method == "POST"], rerun
    assert not [r for r in rerun if any(r.mentions(i) for i in IDS)], rerun
