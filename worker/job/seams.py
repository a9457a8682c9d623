"""What a test may put in place of a job's disk writes, timings and work: one object, passed
down.

Owns: the seams of a job's work that are neither the API client's nor the queue's (those are
their own constructor arguments): how the journal's batches reach the disk, how the report
files are written, how often the usage follower looks for full pages, and the job's work as
a whole (to raise from inside the fault boundary whatever a test needs it to meet).
`Service(seams=...)` hands it to every job through `JobContext`; production uses the
defaults. It never holds state: a frozen value, like `Settings`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from worker.base.fsutil import atomic_writer
from worker.job.report import ReportWriter
from worker.job.usage_check import FOLLOW_EVERY_S
from worker.journal.writer import JournalWrite, write_and_fsync


@dataclass(frozen=True, slots=True)
class JobSeams:
    """A job's disk writes, timings and work; a test passes a disk that fails, a faster
    follower, or work that raises."""

    journal_write: JournalWrite = write_and_fsync  # each group commit of the journal
    report_writer: ReportWriter = atomic_writer  # the report files (`<job>.report.json`, …)
    usage_follow_every: float = FOLLOW_EVERY_S  # the usage follower's look for full pages
    # The job's work inside its boundary (`worker.job.run.work` when None), called as
    # `work(job, ctx, result, counter)`: a test's stands in for the whole of it.
    work: Callable[..., Awaitable[None]] | None = None
