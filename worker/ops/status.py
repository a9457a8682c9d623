"""`enroller status`: what is queued, what is running, who holds it and how far it got.

Owns: reading the queue directory for an operator, as text or JSON. It is strictly read-only:
it never creates folders, never touches a lease, and works while workers run (every file it
reads is written atomically, and a job that vanishes mid-read is simply skipped).

Progress comes from `active/<job_id>/progress.json` when the engine writes one: `{"done": n,
"total": m, "steps": {...}, ...}` is shown as `n/m (23 audios sent, 0 computes)` with the
job's rate and ETA; any other object is shown compactly; absent: "—". Workers, the API's
state and the last finished jobs come from `worker.ops.overview` (data, reused by a web page);
this module only words them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from worker.config.settings import Settings
from worker.ops.health import heartbeat_dir, read_heartbeats
from worker.ops.overview import api_view, job_pace, recent_jobs, workers
from worker.queue.lease import read_lease
from worker.queue.paths import FOLDERS, MANIFEST_DIR, PROGRESS_NAME, STAGING_PREFIX, QueuePaths
from worker.queue.rules import NameKind, classify_name, lease_age, lease_is_stale

NO_VALUE = "—"


def _count(folder: str, path: Path) -> int:
    try:
        names = os.listdir(path)
    except OSError:
        return 0
    if folder == "active":
        return sum(1 for n in names if not n.startswith(".") and (path / n).is_dir())
    if folder == "reports":
        return sum(1 for n in names if n.endswith(".report.json"))
    if folder == "failed":  # every file refused, a customers.xlsx too (worker.queue.refuse)
        return sum(1 for n in names if not n.endswith(".error.json") and not n.startswith("."))
    return sum(1 for n in names if classify_name(n) is NameKind.CANDIDATE)


def _progress(job_dir: Path) -> Any:
    try:
        return json.loads((job_dir / PROGRESS_NAME).read_text("utf-8"))
    except (OSError, ValueError):
        return None


def format_progress(progress: Any) -> str:
    """One short cell for the progress column."""
    if progress is None:
        return NO_VALUE
    if isinstance(progress, dict) and "done" in progress and "total" in progress:
        steps = progress.get("steps")
        done = (
            ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in steps.items())
            if isinstance(steps, dict)
            else ""
        )
        return f"{progress['done']}/{progress['total']}" + (f" ({done})" if done else "")
    return json.dumps(progress, separators=(",", ":"), ensure_ascii=False)[:60]


def _active_job(job_dir: Path, now: float, ttl: float) -> dict[str, Any] | None:
    try:
        gen, lease = read_lease(job_dir)
        manifests = os.listdir(job_dir / MANIFEST_DIR)
    except OSError:
        return None  # finished or moved while we looked
    return {
        "job_id": job_dir.name,
        "file": manifests[0] if manifests else None,
        "holder": lease.holder if lease else None,
        "host": lease.host if lease else None,
        "pid": lease.pid if lease else None,
        "lease_generation": gen,
        "lease_age": round(lease_age(lease, now), 3) if lease else None,
        "stale": lease_is_stale(lease, now, ttl) if lease else True,
        "progress": _progress(job_dir),
    }


def gather(settings: Settings, now: float | None = None) -> dict[str, Any]:
    """The status document: queue dir, counts per folder, and the active jobs."""
    paths = QueuePaths(settings.queue_dir)
    now = time.time() if now is None else now
    counts = {folder: _count(folder, paths.root / folder) for folder in FOLDERS}
    jobs: list[dict[str, Any]] = []
    claiming = 0
    try:
        entries = sorted(os.scandir(paths.active), key=lambda e: e.name)
    except OSError:
        entries = []
    for entry in entries:
        if entry.name.startswith(STAGING_PREFIX):
            claiming += 1
            continue
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        job = _active_job(Path(entry.path), now, settings.lease_ttl)
        if job is not None:
            jobs.append(job)
    for job in jobs:
        job["pace"] = job_pace(job["progress"]).model_dump()
    return {
        "queue_dir": str(paths.root),
        "exists": paths.root.is_dir(),
        "counts": counts,
        "claiming": claiming,
        "lease_ttl": settings.lease_ttl,
        "active": jobs,
        "api_paused": api_pauses(settings.queue_dir),
    }


def gather_status(settings: Settings, now: float | None = None) -> dict[str, Any]:
    """`gather` plus what `enroller status` also tells: the workers by their heartbeats, the
    API as they found it, and the last finished jobs (`worker.ops.overview`)."""
    now = time.time() if now is None else now
    doc = gather(settings, now)
    views = workers(settings.queue_dir, settings.health_max_age, now)
    doc["workers"] = [v.model_dump() for v in views]
    doc["api"] = api_view(views).model_dump()
    doc["recent"] = [j.model_dump() for j in recent_jobs(settings.queue_dir)]
    return doc


def api_pauses(queue_dir: Path) -> list[dict[str, str]]:
    """Workers whose heartbeat says the API asked them to wait (ENROLLER_MAX_RETRY_AFTER)."""
    return [
        {"worker_id": str(beat.get("worker_id")), "until": str(beat["api_paused_until"])}
        for beat in read_heartbeats(heartbeat_dir(queue_dir))
        if beat.get("api_paused_until")
    ]


def render_text(doc: dict[str, Any]) -> str:
    """Human-readable status: workers and the API, counts, active jobs, the last finished."""
    lines = [f"queue {doc['queue_dir']}" + ("" if doc["exists"] else " (does not exist)")]
    lines.extend(worker_lines(doc.get("workers", []), doc.get("api")))
    lines.append("  ".join(f"{k}: {v}" for k, v in doc["counts"].items()))
    if doc["claiming"]:
        lines.append(f"claims being settled: {doc['claiming']}")
    for pause in doc.get("api_paused", []):
        lines.append(
            f"worker {pause['worker_id']}: the API asked to wait until {pause['until']} "
            "(above ENROLLER_MAX_RETRY_AFTER); its jobs wait"
        )
    if not doc["active"]:
        lines.append("no active jobs")
    else:
        lines.extend(_active_table(doc["active"]))
    lines.extend(recent_lines(doc.get("recent", [])))
    return "\n".join(lines)


def worker_lines(views: list[dict[str, Any]], api: dict[str, Any] | None) -> list[str]:
    """One line per worker (running? healthy?) and one for the API as they found it."""
    if not views:
        return ["workers: none running (no heartbeat in the queue)"]
    lines = []
    for v in views:
        age = v["heartbeat_age_s"]
        health = "healthy" if v["fresh"] else f"heartbeat {age:.0f} s old: stuck or gone"
        if v["fresh"] and v["degraded"]:
            health = "degraded"
        lines.append(
            f"worker {v['worker_id']} ({v['state']}, {v['jobs_running']} jobs): {health}, "
            f"heartbeat {age:.1f} s ago"
        )
    if api is not None:
        state = api["state"]
        said = f"unreachable: {api['detail']}" if state == "unreachable" else state
        pauses = []
        if api.get("throttled_for_s"):
            pauses.append(f"throttled (429 Retry-After) for {api['throttled_for_s']:g} s more")
        if api.get("credits_paused"):
            pauses.append("computes paused: out of credits (ENROLLER_CREDITS_RECHECK)")
        lines.append(f"api: {said}" + (f"; pausing us: {', '.join(pauses)}" if pauses else ""))
    return lines


def recent_lines(recent: list[dict[str, Any]]) -> list[str]:
    if not recent:
        return []
    lines = ["last finished:"]
    for job in recent:
        counts = ", ".join(f"{k} {v}" for k, v in job["counts"].items() if v) or "nothing"
        note = " (resumed after an interruption)" if job["interrupted"] else ""
        lines.append(f"  {job['job_id']}  {job['finished_at']}  {counts}{note}")
    lines.append("  (enroller report JOB for one job's summary and files)")
    return lines


def format_pace(pace: dict[str, Any]) -> tuple[str, str]:
    """The RATE and ETA cells of a job."""
    rate = pace.get("per_second")
    eta = pace.get("eta_s")
    rate_cell = f"{rate * 60:.0f}/min" if isinstance(rate, int | float) and rate > 0 else NO_VALUE
    if not isinstance(eta, int | float):
        return rate_cell, NO_VALUE
    minutes, seconds = divmod(int(eta), 60)
    return rate_cell, f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _active_table(active: list[dict[str, Any]]) -> list[str]:
    rows = [("JOB", "FILE", "HOLDER", "LEASE AGE", "PROGRESS", "RATE", "ETA")]
    for job in active:
        age = NO_VALUE if job["lease_age"] is None else f"{job['lease_age']:.1f}s"
        if job["stale"]:
            age += " (stale)"
        rows.append(
            (
                job["job_id"],
                job["file"] or NO_VALUE,
                job["holder"] or NO_VALUE,
                age,
                format_progress(job["progress"]),
                *format_pace(job.get("pace") or {}),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def gather_fleet(redis_url: str) -> dict[str, Any]:
    """The fleets in the configured Redis: worker id, host, jobs, last seen (read-only)."""
    import anyio  # lazy, like Redis itself: only a fleet's status needs them

    from worker.fleet.membership import list_fleets
    from worker.fleet.session import connect

    async def read() -> dict[str, Any]:
        redis = connect(redis_url)
        try:
            fleets = await list_fleets(redis)
        finally:
            await redis.aclose()
        return {
            account: [m.model_dump(mode="json") for m in members]
            for account, members in fleets.items()
        }

    try:
        return {"reachable": True, "accounts": anyio.run(read)}
    except Exception as exc:  # any Redis or network failure: status still shows the queue
        return {"reachable": False, "error": type(exc).__name__, "accounts": {}}


def render_fleet(fleet: dict[str, Any]) -> list[str]:
    if not fleet["reachable"]:
        return [f"fleet: Redis unreachable ({fleet['error']})"]
    lines = []
    for account, members in fleet["accounts"].items():
        lines.append(f"fleet of account {account}: {len(members)} worker(s)")
        for m in members:
            note = " (alone: Redis unreachable)" if m.get("degraded") else ""
            lines.append(
                f"  {m['worker_id']}  host {m['host']}  jobs {m['jobs']}  "
                f"last seen {m['last_seen']}{note}"
            )
    return lines or ["fleet: no worker has a live heartbeat"]


def run_status(settings: Settings, as_json: bool) -> int:
    """Print the status; exit code 0 (a missing queue directory is reported, not an error)."""
    doc = gather_status(settings)
    if settings.redis_url:
        doc["fleet"] = gather_fleet(settings.redis_url)
    if not as_json and "fleet" in doc:
        print(render_text(doc) + "\n" + "\n".join(render_fleet(doc["fleet"])))
        return 0
    print(json.dumps(doc, indent=2, ensure_ascii=False) if as_json else render_text(doc))
    return 0
