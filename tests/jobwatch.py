"""Watching a real worker's queue from outside: journals, leases, reports.

Process tests act on what the worker has provably done (records in its journal, a lease it
wrote) rather than on how long it has been running, so a loaded machine only makes them slower.
The worker is another process: there is no event to await, so tests poll these with
`tests.support.wait_for`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from worker.queue.lease import read_lease


def journal_paths(queue: Path) -> list[Path]:
    return sorted((queue / "active").glob("*/journal.jsonl"))


def journal_records(queue: Path) -> list[dict[str, Any]]:
    """Every whole record of every active job's journal, in file order (a torn tail skipped)."""
    records: list[dict[str, Any]] = []
    for path in journal_paths(queue):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue  # finished and moved meanwhile
        for line in data.splitlines(keepends=True):
            if line.endswith(b"\n"):
                records.append(json.loads(line))
    return records


def kinds(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in records if r["kind"] == kind]


def job_dirs(queue: Path) -> list[Path]:
    return sorted(p for p in (queue / "active").iterdir() if not p.name.startswith("."))


def current_lease(queue: Path) -> dict[str, Any] | None:
    """The highest lease generation of the one active job, as JSON; None if none is readable."""
    dirs = job_dirs(queue)
    if len(dirs) != 1:
        return None
    _, lease = read_lease(dirs[0])
    return None if lease is None else lease.model_dump(mode="json")


def lease_stale(queue: Path, ttl: float) -> bool:
    """Whether another worker would now take the active job over (released, or not renewed)."""
    dirs = job_dirs(queue)
    if len(dirs) != 1:
        return False
    _, lease = read_lease(dirs[0])
    return lease is not None and (lease.released or time.time() - lease.heartbeat.timestamp() > ttl)


def reports(queue: Path) -> list[Path]:
    return sorted((queue / "reports").glob("*.report.json"))


def only_report(queue: Path) -> dict[str, Any]:
    """The queue's one report, read (it fails unless there is exactly one)."""
    [path] = reports(queue)
    return json.loads(path.read_text())
