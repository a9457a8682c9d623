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
from worker.job import boundary


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


async def _run(queue: Path, base_url: str, exc: Exception, patch: pytest.MonkeyPatch) -> Any:
    patch.setattr(boundary, "work", _raising(exc))
    with capture_logs() as logs:
        code = await run_once(make_settings(queue, base_url, lease_ttl=2))
    return code, [entry["event"] for entry in logs]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "exc",
    [JobMustFail("manifest unusable"), EnrollmentFailed("one audio"), RuntimeError("a bug")],
    ids=lambda e: type(e).__name__,
)
async def test_a_job_that_must_fail_goes_to_failed_with_its_error(
    tmp_path: Path, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch, exc: Exception
) -> None:
    queue = _queue(tmp_path / "queue")
    code, events = await _run(queue, emulator.base_url, exc, monkeypatch)
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
    tmp_path: Path, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch, exc: Exception
) -> None:
    queue = _queue(tmp_path / "queue")
    code, events = await _run(queue, emulator.base_url, exc, monkeypatch)
    assert "job_checkpointed_disk_refused" in events and "job_crashed" not in events
    assert list((queue / "failed").iterdir()) == [] and list((queue / "done").iterdir()) == []
    assert _lease(queue)["released"] is True
    assert _starts(queue)["last_error"]["exception"] == type(exc).__name__  # counts as a crash
    assert code != 2


@pytest.mark.timeout(60)
async def test_a_job_no_longer_held_is_left_untouched(
    tmp_path: Path, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = _queue(tmp_path / "queue")
    code, events = await _run(queue, emulator.base_url, JobNoLongerHeld("taken"), monkeypatch)
    assert "job_lease_lost" in events and "job_crashed" not in events
    assert list((queue / "failed").iterdir()) == [] and list((queue / "done").iterdir()) == []
    assert _lease(queue)["released"] is False  # not ours to give back
    assert _starts(queue).get("last_error") is None
    assert code != 2


@pytest.mark.timeout(60)
async def test_a_worker_that_must_stop_checkpoints_the_job_and_exits_2(
    tmp_path: Path, emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = _queue(tmp_path / "queue")
    exc = WorkerMustStop("the API refuses our credentials")
    code, events = await _run(queue, emulator.base_url, exc, monkeypatch)
    assert code == 2 and "job_stopped_fatal" in events and "job_crashed" not in events
    assert list((queue / "failed").iterdir()) == [] and list((queue / "done").iterdir()) == []
    assert _lease(queue)["released"] is True
    assert _starts(queue).get("last_error") is None
