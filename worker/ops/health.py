"""The worker's heartbeat file and `enroller healthcheck`, which judges it.

Owns: `<queue>/.health/<host>-<pid>.json`, rewritten atomically (fsutil) every
`heartbeat_interval` seconds by the running worker and removed when it stops, and the check a
container runtime runs beside it. The file lives in the queue root, outside every queue folder,
so no scan ever sees it; one file per process, so workers sharing a queue never overwrite each
other's. It never touches jobs, leases or the API.

Healthy means: some worker process *of this host* wrote a heartbeat within `health_max_age`
seconds and that process still exists, and every queue folder accepts a new file. "Of this
host" because a queue volume may be shared between containers, and a container's healthcheck
must judge its own worker; the pid check turns a `kill -9` into "unhealthy" at once instead of
after `health_max_age`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import structlog

from worker.base.fsutil import atomic_write_json
from worker.config.settings import Settings
from worker.queue.paths import FOLDERS

log = structlog.get_logger(__name__)

HEALTH_DIR = ".health"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def heartbeat_dir(queue_dir: Path) -> Path:
    return queue_dir / HEALTH_DIR


def heartbeat_path(queue_dir: Path, host: str | None = None, pid: int | None = None) -> Path:
    """This process's heartbeat file (host and pid default to the caller's own)."""
    host = socket.gethostname() if host is None else host
    pid = os.getpid() if pid is None else pid
    return heartbeat_dir(queue_dir) / f"{_UNSAFE.sub('_', host)}-{pid}.json"


def heartbeat_document(
    settings: Settings, state: str, jobs: int, started: float, api: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What a heartbeat says; `api` is the API's state (`worker.api.outage.ApiState`)."""
    now = time.time()
    return {
        "api": api,
        "worker_id": settings.worker_id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "state": state,
        "jobs_running": jobs,
        "at": now,
        "at_iso": datetime.fromtimestamp(now, UTC).isoformat(),
        "started_at": started,
    }


async def heartbeat_forever(
    settings: Settings,
    state: Callable[[], tuple[str, int]],
    api: Callable[[], dict[str, Any]] | None = None,
    extra: Callable[[], dict[str, Any]] | None = None,
) -> None:
    """Write the heartbeat now and every `heartbeat_interval` s; remove it when cancelled.

    `state()` returns `(state, jobs_running)`, `api()` the API's state, `extra()` fields to add
    (a pause the API asked for, which `enroller status` shows). A write that fails (full disk)
    is logged and retried next time: the healthcheck will then report the stale heartbeat,
    which is the point.
    """
    path = heartbeat_path(settings.queue_dir)
    started = time.time()
    await anyio.to_thread.run_sync(sweep_dead, heartbeat_dir(settings.queue_dir))
    try:
        while True:
            name, jobs = state()
            doc = heartbeat_document(settings, name, jobs, started, api() if api else None)
            if extra is not None:
                doc.update(extra())
            try:
                await anyio.to_thread.run_sync(_write, path, doc)
            except OSError as exc:
                log.warning("heartbeat_not_written", path=str(path), error=exc.strerror)
            await anyio.sleep(settings.heartbeat_interval)
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


def sweep_dead(directory: Path, pid_alive: Callable[[int], bool] | None = None) -> list[Path]:
    """Remove heartbeats that this host's dead processes left behind (`kill -9`, OOM).

    Only this host's: another host's pids mean nothing here. Returns what was removed.
    """
    alive = pid_alive or _pid_alive
    host = socket.gethostname()
    removed = []
    for path, doc in _read_beat_files(directory):
        pid = doc.get("pid")
        if doc.get("host") == host and isinstance(pid, int) and not alive(pid):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def _write(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, doc, indent=None)


# --- the check ---------------------------------------------------------------------------------


@dataclass
class HealthReport:
    ok: bool
    problems: list[str] = field(default_factory=list)
    heartbeat: dict[str, Any] | None = None
    # Alive but not working: the API cannot be reached. Still ok for a probe (a restart
    # would not bring the API back), said by every surface.
    degraded: list[str] = field(default_factory=list)


def api_degraded(api: Any, now: float) -> str | None:
    """Why a worker whose heartbeat carries this API state is degraded, or None."""
    if not isinstance(api, dict) or api.get("state") != "unreachable":
        return None
    since = api.get("since")
    length = f" for {now - since:.0f} s" if isinstance(since, int | float) else ""
    error = f" (last error: {api['last_error']})" if api.get("last_error") else ""
    return (
        f"the API has been unreachable{length}{error}; the worker retries with backoff and "
        "resumes when it answers"
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def judge_heartbeats(
    beats: list[dict[str, Any]],
    *,
    now: float,
    max_age: float,
    host: str,
    pid_alive: Callable[[int], bool] = _pid_alive,
) -> tuple[dict[str, Any] | None, list[str]]:
    """Pick the freshest live heartbeat of `host`; say why none qualifies. Pure but for pids."""
    mine = [b for b in beats if b.get("host") == host and isinstance(b.get("at"), int | float)]
    if not mine:
        return None, [f"no worker heartbeat from host {host}: is `enroller run` running?"]
    alive = [b for b in mine if isinstance(b.get("pid"), int) and pid_alive(b["pid"])]
    if not alive:
        return None, ["the worker that wrote the last heartbeat is no longer running"]
    best = max(alive, key=lambda b: b["at"])
    age = now - best["at"]
    if age > max_age:
        return best, [f"worker heartbeat is {age:.0f} s old (limit {max_age:g} s): stuck?"]
    return best, []


def _read_beat_files(directory: Path) -> list[tuple[Path, dict[str, Any]]]:
    beats = []
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    for name in names:
        if name.startswith(".") or not name.endswith(".json"):
            continue
        try:
            doc = json.loads((directory / name).read_text("utf-8"))
        except (OSError, ValueError):
            continue  # removed between listing and reading, or not ours
        if isinstance(doc, dict):
            beats.append((directory / name, doc))
    return beats


def read_heartbeats(directory: Path) -> list[dict[str, Any]]:
    """Every heartbeat document in `directory` (`heartbeat_dir(queue)`), any host."""
    return _read_beats(directory)


def _read_beats(directory: Path) -> list[dict[str, Any]]:
    return [doc for _, doc in _read_beat_files(directory)]


def _writable(folder: Path) -> str | None:
    """Create and remove a dot-named `.tmp` file (ignored by every scan); None when it works."""
    probe = folder / f".health-probe-{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"queue folder {folder} is not writable: {exc.strerror}"
    return None


def check_health(settings: Settings, *, now: float | None = None) -> HealthReport:
    """The whole healthcheck: heartbeat of this host's worker, and writable queue folders."""
    now = time.time() if now is None else now
    beat, problems = judge_heartbeats(
        _read_beats(heartbeat_dir(settings.queue_dir)),
        now=now,
        max_age=settings.health_max_age,
        host=socket.gethostname(),
    )
    for folder in FOLDERS:
        problem = _writable(settings.queue_dir / folder)
        if problem:
            problems.append(problem)
    degraded = [why] if beat and (why := api_degraded(beat.get("api"), now)) else []
    return HealthReport(ok=not problems, problems=problems, heartbeat=beat, degraded=degraded)


def run_healthcheck(settings: Settings, *, quiet: bool = False) -> int:
    """`enroller healthcheck`: 0 healthy, 1 unhealthy, with one line saying why."""
    report = check_health(settings)
    for why in report.degraded:  # said even with --quiet: the probe passes, the log keeps it
        print(f"degraded: {why}")
    if report.ok:
        if not quiet:
            beat = report.heartbeat or {}
            age = time.time() - float(beat.get("at", 0))
            print(f"healthy: worker {beat.get('worker_id')} heartbeat {age:.1f} s ago")
        return 0
    for problem in report.problems:
        print(f"unhealthy: {problem}")
    return 1
