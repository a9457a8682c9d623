"""The job's boundary acts on the kind of what escapes (worker/base/errors.py), whatever module
raised it: each kind is raised from a job's work in a real in-process run (real queue, emulator)
and the job's files, the exit code and the log event are those of its fate (design.md §7)."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.audiogen import write_audio
from tests.emulator_harness import EmulatorHandle
from tests.support import make_settings, run_once
from worker.base.errors import (
    EnrollmentFailed,
    JobMustCheckpoint,
    JobMustFail,
    JobNoLongerHeld,
    WorkerMustStop,
)
from worker.job.seams import JobSeams
from worker.queue.discover import Candidate
from worker.queue.jobqueue import JobQueue
from worker.queue.paths import ClaimedJob, QueueSetupError


def _queue(root: Path) -> Path:
    write_audio(root / "audio" / "kind-1.wav", voice_s=5.0, samplerate=8000)
    (root / "inbox").mkdir(parents=True)
    (root / "inbox" / "kind.json").write_text(
        json.dumps({"identity": "kind-1", "audios": ["kind-1.wav"]})
    )
    return root


def _raising(exc: Exception) -> Any:
    async def work(job: Any, ctx: Any, result: Any, counter: Any) -> None:
        result.phase = "enroll"
        raise exc

    return work


def _lease(queue: Path) -> dict[str, Any]:
    [job_dir] = (queue / "active").iterdir()
    newest = max(job_dir.glob("lease.*.json"), key=lambda p: int(p.name.split(".")[1]))
    return json.loads(newest.read_text())


def _starts(queue: Path) -> dict[str, Any]:
    [starts] = (queue / "active").glob("*/starts.json")
    return json.loads(starts.read_text())


async def _run(queue: Path, base_url: str, exc: Exception) -> Any:
    seams = JobSeams(work=_raising(exc))  # the exception, raised inside the job's boundary
    with capture_logs() as logs:
        code = await run_once(make_settings(queue, base_url, lease_ttl=2), seams=seams)
    return code, [entry["event"] for entry in logs]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "exc",
    [JobMustFail("manifest unusable"), EnrollmentFailed("one audio"), RuntimeError("a bug")],
    ids=lambda e: type(e).__name__,
)
async def test_a_job_that_must_fail_goes_to_failed_with_its_error(
    tmp_path: Path, emulator: EmulatorHandle, exc: Exception
) -> None:
    queue = _queue(tmp_path / "queue")
    code, events = await _run(queue, emulator.base_url, exc)
    assert code == 1 and "job_crashed" in events and "job_failed" in events
    [error_file] = (queue / "failed").glob("kind-*.error.json")
    error = json.loads(error_file.read_text())["error"]
    assert error == {"exception": type(exc).__name__, "message": str(exc), "phase": "enroll"}
    assert list((queue / "active").iterdir()) == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "exc",
    [JobMustCheckpoint("the disk refused"), OSError(errno.ENOSPC, "No space left on device")],
    ids=lambda e: type(e).__name__,
)
async def test_a_job_that_must_checkpoint_keeps_its_journal_and_gives_its_lease_back(
    tmp_path: Path, emulator: EmulatorHandle, exc: Exception
) -> None:
    queue = _queue(tmp_path / "queue")
    code, events = await _run(queue, emulator.base_url, exc)
    assert "job_checkpointed_disk_refused" in events and "job_crashed" not in events
    assert list((queue / "failed").iterdir()) == [] and list((queue / "done").iterdir()) == []
    assert _lease(queue)["released"] is True
    assert _starts(queue)["last_error"]["exception"] == type(exc).__name__  # counts as a crash
    assert code != 2


@pytest.mark.timeout(60)
async def test_a_job_no_longer_held_is_left_untouched(
    tmp_path: Path, emulator: EmulatorHandle
) -> None:
    queue = _queue(tmp_path / "queue")
    code, events = await _run(queue, emulator.base_url, JobNoLongerHeld("taken"))
    assert "job_lease_lost" in events and "job_crashed" not in events
    assert list((queue / "failed").iterdir()) == [] and list((queue / "done").iterdir()) == []
    assert _lease(queue)["released"] is False  # not ours to give back
    assert _starts(queue).get("last_error") is None
    assert code != 2


@pytest.mark.timeout(60)
async def test_a_worker_that_must_stop_checkpoints_the_job_and_exits_2(
    tmp_path: Path, emulator: EmulatorHandle
) -> None:
    queue = _queue(tmp_path / "queue")
    exc = WorkerMustStop("the API refuses our credentials")
    code, events = await _run(queue, emulator.base_url, exc)
    assert code == 2 and "job_stopped_fatal" in events and "job_crashed" not in events
    assert list((queue / "failed").iterdir()) == [] and list((queue / "done").iterdir()) == []
    assert _lease(queue)["released"] is True
    assert _starts(queue).get("last_error") is None


class _UnusableQueue(JobQueue):
    """A queue whose claims find it unusable, as when active/ turned read-only after setup."""

    async def claim(self, candidate: Candidate) -> ClaimedJob | None:
        raise QueueSetupError(f"queue folder {self.paths.active} is not writable: Read-only")


@pytest.mark.timeout(60)
async def test_a_queue_unusable_at_claim_time_stops_the_worker_with_exit_2(
    tmp_path: Path, emulator: EmulatorHandle
) -> None:
    queue = _queue(tmp_path / "queue")
    settings = make_settings(queue, emulator.base_url, lease_ttl=2)
    with capture_logs() as logs:
        code = await run_once(settings, queue=_UnusableQueue(settings))
    events = [entry["event"] for entry in logs]
    assert code == 2 and "worker_must_stop" in events  # a clean stop, not a traceback
    [stopped] = [e for e in logs if e["event"] == "worker_must_stop"]
    assert "is not writable" in stopped["reason"]
    assert [p.name for p in (queue / "inbox").iterdir()] == ["kind.json"]  # left for later
