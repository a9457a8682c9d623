"""What a test may put in place of a job's disk writes and timings: one object, passed down.

Owns: the seams of a job's work that are neither the API client's nor the queue's (those are
their own constructor arguments): how the journal's batches reach the disk, how the report
files are written, how often the usage follower looks for full pages. `Service(seams=...)`
hands it to every job through `JobContext`; production uses the defaults. It never holds
state: a frozen value, like `Settings`.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.base.fsutil import atomic_writer
from worker.job.report import ReportWriter
from worker.job.usage_check import FOLLOW_EVERY_S
from worker.journal.records import JournalWrite, write_and_fsync


@dataclass(frozen=True, slots=True)
class JobSeams:
    """A job's disk writes and timings; a test passes a disk that fails or a faster follower."""

    journal_write: JournalWrite = write_and_fsync  # each group commit of the journal
    report_writer: ReportWriter = atomic_writer  # the report files (`<job>.report.json`, …)
    usage_follow_every: float = FOLLOW_EVERY_S  # the usage follower's look for full pages
