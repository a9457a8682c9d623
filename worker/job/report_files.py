"""A finished job's report files, and which run of the job they belong to.

Owns: writing `<job>.report.json`, `<job>.failures.csv` and `<job>.retry.json` for one run, and
naming them so that a run never overwrites an earlier run's: a manifest dropped again with the
same content is the same job id run again, and writes `<job>-2.*`, then `<job>-3.*`… A run is
known by its start time (in the journal, stable across a crash and resume), so a resumed run
rewrites its own files, never a new set.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import anyio
import anyio.to_thread

from worker.api.governor import RequestMeter
from worker.base.fsutil import atomic_writer
from worker.base.text import safe_text
from worker.job.input import JobInput
from worker.job.report import ReportSummary, ReportWriter, UsageCheck, write_report_json
from worker.journal.index import JournalIndex
from worker.queue.jobqueue import JobQueue
from worker.queue.paths import ClaimedJob, ReportPaths

MAX_REPORT_RUNS = 10_000  # runs of one job id whose reports are kept side by side


async def write_reports(
    job: ClaimedJob,
    queue: JobQueue,
    loaded: JobInput,
    started_at: datetime,
    usage: UsageCheck,
    index: JournalIndex,
    writer: ReportWriter = atomic_writer,
    meter: RequestMeter | None = None,
    *,
    interrupted: bool = False,
) -> tuple[dict[str, int], Path]:
    """Write this run's three report files; returns the counts by outcome and the report.

    `meter` holds the requests this run of the job sent (its client's, `ApiClient.meter`);
    `interrupted`: an earlier start of the job was cut (a stop, a crash) and this one resumed it.

    Everything is streamed: the counts are the index's, the report's rows are read back from
    the journal one at a time (`index.outcomes()`), the failures CSV and the retry manifest
    come from one walk of the manifest (`JobInput.write_outputs`).
    """

    def write() -> tuple[dict[str, int], Path]:
        paths = run_report_paths(queue, job.job_id, started_at)
        index.catch_up()
        counts = index.counts()
        summary = ReportSummary(
            job_id=job.job_id,
            manifest=safe_text(job.name),  # a name from a Windows share may not be UTF-8
            manifest_sha256=job.sha256,
            started_at=started_at,
            finished_at=datetime.now(UTC),
            total=sum(counts.values()),
            counts=dict(counts),
            requests=meter.requests if meter is not None else None,
            credits_spent=usage.expected,  # every compute this job performed (journaled)
            usage=usage,
            interrupted=interrupted,
            files={
                "report": str(paths.report),
                "failures": str(paths.failures),
                "retry": str(paths.retry),
            },
        )
        write_report_json(paths.report, summary, index.outcomes(), writer)
        loaded.write_outputs(index, paths.failures, paths.retry)
        return dict(counts), paths.report

    return await anyio.to_thread.run_sync(write)


def run_report_paths(queue: JobQueue, job_id: str, started_at: datetime) -> ReportPaths:
    """This run's report files: `<job>.*`, else `<job>-2.*`, `-3.*`… (blocking: reads)."""
    for run in range(1, MAX_REPORT_RUNS + 1):
        paths = queue.paths.report_paths(job_id if run == 1 else f"{job_id}-{run}")
        earlier = _report_started_at(paths.report)
        if earlier is None or earlier == started_at:
            return paths
    raise RuntimeError(f"{MAX_REPORT_RUNS} runs of job {job_id} have reports already")


def _report_started_at(report: Path) -> datetime | None:
    """When the run that wrote `report` started; None when there is no such report."""
    try:
        data = json.loads(report.read_bytes())
        return datetime.fromisoformat(str(data["started_at"]).replace("Z", "+00:00"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return datetime.min.replace(tzinfo=UTC)  # unreadable: an earlier run's, keep it
