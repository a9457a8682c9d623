"""What the status page shows, as data: the overview, the job lists and one job.

Owns: gathering the queue's state for `enroller web` (`worker.commands.web`) from what
`enroller status` already reads (`worker.ops.status.gather_status`, `worker.ops.overview`),
plus what only the page shows: each active job's counts by outcome, the failed manifests with
their reason, the request rate against ENROLLER_RATE_LIMIT, and one job found by its exact id.
Read-only and bounded: every listing stops at a fixed count, a report is read up to its head
(never its rows), and a job's failures come a page at a time (`worker.commands.web_failures`).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from worker.config.settings import Settings
from worker.ops.overview import FinishedJob, finished_job, recent_jobs, report_head
from worker.ops.status import format_pace, format_progress, gather_status
from worker.queue.paths import QueuePaths

JOB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
FINISHED_SHOWN = 20  # latest finished jobs on the jobs page
FAILED_SHOWN = 20  # latest failed manifests on the jobs page
ERROR_FILE_MAX = 256 * 1024  # an error.json larger than this is not read
OUTCOMES = ("enrolled", "unchanged", "kept", "replaced", "failed", "conflict", "skipped")


class ActiveJob(BaseModel):
    job_id: str
    file: str | None
    holder: str | None
    stale: bool
    done: int | None
    total: int | None
    progress: str
    rate: str
    eta: str
    counts: dict[str, int]


class FailedManifest(BaseModel):
    job_id: str
    file: str | None
    reasons: list[str]
    failed_at: str | None


class JobDetail(BaseModel):
    job_id: str
    state: str  # active, finished, failed
    manifest: str | None = None
    counts: dict[str, int] = {}
    total: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    requests: int | None = None
    credits_spent: int | None = None
    reasons: list[str] = []
    downloads: list[str] = []  # report, failures, retry: those that exist
    active: ActiveJob | None = None


def overview(settings: Settings, now: float | None = None) -> dict[str, Any]:
    """The status document plus the fleet's request rate against the account's limit."""
    doc = gather_status(settings, time.time() if now is None else now)
    rates = [
        w["api"].get("requests_per_s")
        for w in doc["workers"]
        if w["fresh"] and isinstance(w.get("api"), dict)
    ]
    known = [r for r in rates if isinstance(r, int | float)]
    doc["rate"] = {
        "used": round(sum(known), 2) if known else None,
        "limit": settings.rate_limit,
        "share": min(1.0, sum(known) / settings.rate_limit) if known else None,
    }
    return doc


def active_jobs(doc: dict[str, Any]) -> list[ActiveJob]:
    """The active jobs of a status document, worded for the page."""
    api_down = (doc.get("api") or {}).get("state") == "unreachable"
    jobs = []
    for job in doc["active"]:
        progress = job.get("progress") if isinstance(job.get("progress"), dict) else {}
        counts = progress.get("counts") if isinstance(progress.get("counts"), dict) else {}
        rate, eta = format_pace(job.get("pace") or {}, api_down)
        pace = job.get("pace") or {}
        jobs.append(
            ActiveJob(
                job_id=job["job_id"],
                file=job["file"],
                holder=job["holder"],
                stale=bool(job["stale"]),
                done=pace.get("done"),
                total=pace.get("total"),
                progress=format_progress(job.get("progress")),
                rate=rate,
                eta=eta,
                counts={k: v for k, v in counts.items() if isinstance(v, int)},
            )
        )
    return jobs


def finished_jobs(settings: Settings) -> list[FinishedJob]:
    return recent_jobs(settings.queue_dir, FINISHED_SHOWN)


def failed_manifests(settings: Settings, limit: int = FAILED_SHOWN) -> list[FailedManifest]:
    """The newest manifests that could not run, with the reasons their error file gives."""
    failed = QueuePaths(settings.queue_dir).failed
    try:
        entries = [e for e in os.scandir(failed) if e.name.endswith(".error.json")]
    except OSError:
        return []
    entries.sort(key=_mtime, reverse=True)
    return [_failed(Path(e.path)) for e in entries[:limit]]


def _failed(path: Path) -> FailedManifest:
    job_id = path.name.removesuffix(".error.json")
    doc: Any = None
    try:
        if path.stat().st_size <= ERROR_FILE_MAX:
            doc = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        doc = None
    if not isinstance(doc, dict):
        return FailedManifest(job_id=job_id, file=None, reasons=["(error file unreadable)"],
                              failed_at=None)  # fmt: skip
    problems = doc.get("problems") if isinstance(doc.get("problems"), list) else []
    reasons = [str(p.get("reason") if isinstance(p, dict) else p) for p in problems[:20]] or [
        "(no reason given)"
    ]
    file = doc.get("file")
    at = doc.get("failed_at")
    return FailedManifest(
        job_id=job_id,
        file=file if isinstance(file, str) else None,
        reasons=reasons,
        failed_at=at if isinstance(at, str) else None,
    )


def _mtime(entry: os.DirEntry[str]) -> float:
    try:
        return entry.stat().st_mtime
    except OSError:
        return 0.0


def job_detail(settings: Settings, job_id: str) -> JobDetail | None:
    """One job by its exact id (active, finished or failed), or None: an id that is not a
    job id (`../../etc/passwd`) is never joined to a path."""
    if not JOB_ID_RE.fullmatch(job_id):
        return None
    paths = QueuePaths(settings.queue_dir)
    files = paths.report_paths(job_id)
    downloads = [k for k in ("report", "failures", "retry") if getattr(files, k).is_file()]
    head = report_head(files.report) if files.report.is_file() else None
    if head is not None:
        done = finished_job(head, files.report)
        return JobDetail(
            job_id=job_id,
            state="finished",
            manifest=done.manifest,
            counts=done.counts,
            total=head.get("total") if isinstance(head.get("total"), int) else None,
            started_at=head.get("started_at") if isinstance(head.get("started_at"), str) else None,
            finished_at=done.finished_at,
            requests=head.get("requests") if isinstance(head.get("requests"), int) else None,
            credits_spent=done.credits_spent,
            downloads=downloads,
        )
    if paths.job_dir(job_id).is_dir():
        doc = gather_status(settings)
        found = [j for j in active_jobs(doc) if j.job_id == job_id]
        if found:
            job = found[0]
            return JobDetail(job_id=job_id, state="active", manifest=job.file,
                             counts=job.counts, total=job.total, active=job)  # fmt: skip
    if paths.error_path(job_id).is_file():
        failed = _failed(paths.error_path(job_id))
        return JobDetail(job_id=job_id, state="failed", manifest=failed.file,
                         reasons=failed.reasons, finished_at=failed.failed_at)  # fmt: skip
    return None


def chart(counts: dict[str, int]) -> list[dict[str, Any]]:
    """Bars of a counts chart: each outcome's count and its share of the largest, in the order
    outcomes are told everywhere else (a template draws them as SVG: no inline style)."""
    ordered = [(k, counts[k]) for k in OUTCOMES if counts.get(k)]
    ordered += [(k, v) for k, v in counts.items() if k not in OUTCOMES and v]
    top = max((v for _, v in ordered), default=0)
    return [{"outcome": k, "count": v, "share": v / top if top else 0.0} for k, v in ordered]
