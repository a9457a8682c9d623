"""The poison-pill counter: a job that keeps killing its worker stops being retried.

Owns: `active/<job>/starts.json`, which counts the starts of a job that neither ended nor made
progress, the phase the job last reached and the last error it recorded. A start is recorded
(atomically) before the job reads anything, so even a crash that no `except` can catch (an OOM
kill, a codec's segfault) has been counted. A job that stops cleanly on shutdown resets the
count, and so does a start that finds the journal grown since the previous one: a worker killed
from outside mid-job (a deploy, `kill -9`) made progress before it died, and resuming it is
what the journal is for. A poison pill crashes at the same point without progress, so it is
found at its `max_job_starts + 1`-th start and failed instead of run (design.md §7): three
restarts, not the whole fleet, one worker after another.

The rule (`crashed_too_often`) is pure; the file I/O is blocking and runs in a thread.
"""

from __future__ import annotations

from pathlib import Path

import structlog
from pydantic import BaseModel, ValidationError

from worker.base.fsutil import atomic_write_json
from worker.base.text import SafeStr

log = structlog.get_logger(__name__)


class JobError(BaseModel):
    """What stopped a job, as its error file and the poison-pill record give it."""

    exception: str  # the exception's class name
    message: SafeStr
    phase: str  # where the job was: start, parse, resume, enroll, usage, report, finish


class JobStarts(BaseModel):
    """The content of `starts.json`."""

    starts: int = 0  # starts in a row that neither ended nor made progress
    journal_bytes: int = 0  # the journal's size at the last start: growth means progress
    phase: str = ""
    last_error: JobError | None = None


def crashed_too_often(record: JobStarts, max_starts: int) -> bool:
    """Whether the start just recorded comes after `max_starts` starts that never ended."""
    return record.starts > max_starts


def poison_reason(record: JobStarts) -> str:
    """The sentence the error file gives for a job failed by the counter."""
    crashes = record.starts - 1
    where = f" (last seen in phase {record.phase!r})" if record.phase else ""
    last = (
        f"; last error: {record.last_error.exception}: {record.last_error.message}"
        if record.last_error is not None
        else "; no error was recorded before the crashes (killed, e.g. out of memory)"
    )
    return f"crashed the worker {crashes} times{where}{last}"


class StartCounter:
    """The counter of one job directory; every write replaces the file atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path  # `ClaimedJob.starts_path`: the queue owns the layout
        self.record = JobStarts()

    def start(self, journal: Path) -> JobStarts:
        """Count one more start (blocking) and return the record as it now stands."""
        previous = self._read()
        try:
            size = journal.stat().st_size
        except FileNotFoundError:
            size = 0
        progressed = size > previous.journal_bytes
        self.record = previous.model_copy(
            update={
                "starts": 1 if progressed else previous.starts + 1,
                "journal_bytes": size,
                "phase": "",
            }
        )
        self._write()
        return self.record

    def phase(self, phase: str) -> None:
        """Note the phase reached, so a crash without an error still says where it was."""
        self.record = self.record.model_copy(update={"phase": phase})
        self._write_best_effort()

    def error(self, error: JobError) -> None:
        self.record = self.record.model_copy(update={"last_error": error})
        self._write_best_effort()

    def clean_stop(self) -> None:
        """A shutdown, not a crash: the next start is a first start again."""
        self.record = JobStarts(
            journal_bytes=self.record.journal_bytes, last_error=self.record.last_error
        )
        self._write_best_effort()

    def _write_best_effort(self) -> None:
        # Only `start` must reach the disk; these notes only improve the message.
        try:
            self._write()
        except OSError as exc:
            log.warning("job_starts_not_written", path=str(self.path), error=exc.strerror)

    def _read(self) -> JobStarts:
        try:
            return JobStarts.model_validate_json(self.path.read_bytes())
        except FileNotFoundError:
            return JobStarts()
        except (OSError, ValidationError, ValueError) as exc:
            log.warning("job_starts_unreadable", path=str(self.path), error=str(exc))
            return JobStarts()  # unreadable counts as none: the job runs rather than fails

    def _write(self) -> None:
        atomic_write_json(self.path, self.record.model_dump(mode="json"))
