"""What an operator wants to know at a glance, as data: workers, the API, rates, finished jobs.

Owns: reading the queue's heartbeats (`workers`), the API's state as the freshest worker found
it (`api_view`), a job's rate and ETA from its `progress.json` (`job_pace`) and the last
finished jobs from their reports (`recent_jobs`), as pydantic models and plain functions
returning data. `enroller status` renders them as text (`worker.ops.status`); a web page
(issue 31) can render the same models. Read-only, like status: nothing here writes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import ijson
from ijson.common import ObjectBuilder
from pydantic import BaseModel

from worker.ops.health import api_degraded, heartbeat_dir, read_heartbeats
from worker.queue.paths import QueuePaths

RECENT_JOBS = 5
# A report's summary keys come before its rows; reading stops at the rows.
_ROWS_KEY = "enrollments"


class WorkerView(BaseModel):
    """One worker process, from its heartbeat."""

    worker_id: str | None
    host: str | None
    pid: int | None
    state: str | None  # running, stopping
    jobs_running: int | None
    heartbeat_age_s: float | None
    fresh: bool  # heartbeat within health_max_age
    degraded: str | None = None  # why it cannot work (the API unreachable), or None
    api: dict[str, Any] | None = None


class ApiView(BaseModel):
    """The API as the freshest heartbeat tells it."""

    state: str  # unknown, reachable, unreachable
    since: float | None = None
    detail: str | None = None
    throttled_for_s: float = 0.0  # a 429's Retry-After still running: every request waits
    credits_paused: bool = False  # computes paused: the owner ran out of credits


class JobPace(BaseModel):
    """How fast a running job goes, from its progress.json."""

    done: int | None = None
    total: int | None = None
    steps: dict[str, int] = {}
    per_second: float | None = None
    eta_s: float | None = None


class FinishedJob(BaseModel):
    """A finished job, from the head of its report."""

    job_id: str
    manifest: str | None = None
    finished_at: str | None = None
    counts: dict[str, int] = {}
    credits_spent: int | None = None
    interrupted: bool = False
    report: str


def workers(queue_dir: Path, max_age: float, now: float | None = None) -> list[WorkerView]:
    """Every worker with a heartbeat file in the queue, freshest first."""
    now = time.time() if now is None else now
    views = []
    for beat in read_heartbeats(heartbeat_dir(queue_dir)):
        at = beat.get("at")
        age = now - at if isinstance(at, int | float) else None
        views.append(
            WorkerView(
                worker_id=_text(beat.get("worker_id")),
                host=_text(beat.get("host")),
                pid=beat.get("pid") if isinstance(beat.get("pid"), int) else None,
                state=_text(beat.get("state")),
                jobs_running=beat.get("jobs_running")
                if isinstance(beat.get("jobs_running"), int)
                else None,
                heartbeat_age_s=round(age, 1) if age is not None else None,
                fresh=age is not None and age <= max_age,
                degraded=api_degraded(beat.get("api"), now),
                api=beat.get("api") if isinstance(beat.get("api"), dict) else None,
            )
        )
    return sorted(views, key=lambda v: v.heartbeat_age_s if v.heartbeat_age_s is not None else 1e18)


def api_view(views: list[WorkerView]) -> ApiView:
    """The API's state as the freshest live worker last found it ("unknown" without one)."""
    for view in views:
        if view.fresh and view.api:
            state = str(view.api.get("state", "unknown"))
            since = view.api.get("since")
            throttled = _num(view.api.get("throttled_for_s")) or 0.0
            age = view.heartbeat_age_s or 0.0
            return ApiView(
                state=state,
                since=since if isinstance(since, int | float) else None,
                detail=view.degraded,
                throttled_for_s=round(max(0.0, throttled - age), 1),  # as of now, not the beat
                credits_paused=view.api.get("credits_paused") is True,
            )
    return ApiView(state="unknown", detail="no live worker has told")


def job_pace(progress: Any) -> JobPace:
    """A job's pace from its progress document (anything else: an empty pace)."""
    if not isinstance(progress, dict):
        return JobPace()
    steps = progress.get("steps")
    return JobPace(
        done=_int(progress.get("done")),
        total=_int(progress.get("total")),
        steps={k: v for k, v in steps.items() if isinstance(v, int)}
        if isinstance(steps, dict)
        else {},
        per_second=_num(progress.get("per_second")),
        eta_s=_num(progress.get("eta_s")),
    )


def recent_jobs(queue_dir: Path, limit: int = RECENT_JOBS) -> list[FinishedJob]:
    """The `limit` most recently written reports, newest first."""
    reports = QueuePaths(queue_dir).root / "reports"
    try:
        entries = [e for e in os.scandir(reports) if e.name.endswith(".report.json")]
    except OSError:
        return []
    entries.sort(key=lambda e: _mtime(e), reverse=True)
    found = []
    for entry in entries[:limit]:
        head = report_head(Path(entry.path))
        if head is not None:
            found.append(finished_job(head, Path(entry.path)))
    return found


def finished_job(head: dict[str, Any], path: Path) -> FinishedJob:
    counts = head.get("counts")
    return FinishedJob(
        job_id=str(head.get("job_id") or path.name.removesuffix(".report.json")),
        manifest=_text(head.get("manifest")),
        finished_at=_text(head.get("finished_at")),
        counts={k: v for k, v in counts.items() if isinstance(v, int)}
        if isinstance(counts, dict)
        else {},
        credits_spent=_int(head.get("credits_spent")),
        interrupted=head.get("interrupted") is True,
        report=str(path),
    )


def report_head(path: Path) -> dict[str, Any] | None:
    """A report's summary (every key before its rows), read as a stream: a report of 100 000
    rows costs what one of ten does. None when it cannot be read."""
    head: dict[str, Any] = {}
    key: str | None = None
    builder: ObjectBuilder | None = None
    try:
        with open(path, "rb") as fh:
            for prefix, event, value in ijson.parse(fh, use_float=True):
                if prefix == "" and event == "map_key":
                    if key is not None and builder is not None:
                        head[key] = builder.value
                    if value == _ROWS_KEY:
                        return head
                    key, builder = value, ObjectBuilder()
                elif prefix == "" and event in ("start_map", "end_map"):
                    if event == "end_map" and key is not None and builder is not None:
                        head[key] = builder.value
                elif builder is not None:
                    builder.event(event, value)
    except (OSError, ijson.JSONError):
        return None
    return head


def _mtime(entry: os.DirEntry[str]) -> float:
    try:
        return entry.stat().st_mtime
    except OSError:
        return 0.0


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _num(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else None
