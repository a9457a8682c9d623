"""A tiny worker process for queue tests: real processes racing over one queue directory.

Usage: python queue_worker.py MODE QUEUE_DIR [ARGS...]
  race GO_FILE       print "ready", wait for GO_FILE, claim every inbox file it can, print
                     one JSON line each; after its first claim, wait for the rival's first
  hold TTL           claim one file, print its job as JSON, heartbeat until killed
  crash STEP         claim one file and die (os._exit) at the claim step named STEP
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import anyio

from worker.base.log import configure_logging
from worker.config.settings import Settings
from worker.queue.claim import CrashHook
from worker.queue.discover import Candidate
from worker.queue.jobqueue import JobQueue


def _queue(root: str, ttl: float = 5.0, crash_hook: CrashHook | None = None) -> JobQueue:
    settings = Settings(
        queue_dir=Path(root), min_age=0, lease_ttl=ttl, worker_id=f"test-{os.getpid()}"
    )
    queue = JobQueue(settings, crash_hook=crash_hook)
    queue.setup()
    return queue


def _candidates(queue: JobQueue) -> list[Candidate]:
    out = []
    for name in sorted(os.listdir(queue.paths.inbox)):
        path = queue.paths.inbox / name
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        out.append(Candidate(path, st.st_size, st.st_mtime))
    return out


def race(root: str, go_file: str) -> None:
    queue = _queue(root)
    print("ready", flush=True)  # imported and set up: the parent's barrier
    while not os.path.exists(go_file):  # the parent's go: a file, polled (this is a script in
        time.sleep(0.001)  # a process of its own, so tests.support's waits are not importable)
    first = True
    while candidates := _candidates(queue):
        for candidate in candidates:
            job = queue.claim_sync(candidate)
            if job is not None:
                print(json.dumps({"name": job.name, "job_id": job.job_id}), flush=True)
                if first:  # the second barrier: both hold a claim before either goes on
                    first = False
                    _wait_for_rival(go_file)


def _wait_for_rival(go_file: str, racers: int = 2, limit_s: float = 60.0) -> None:
    """Mark this racer's first claim, then wait (bounded) for the other's: a loaded machine
    that stalls one process would otherwise let the other take every file before it starts."""
    Path(f"{go_file}.{os.getpid()}").touch()
    deadline = time.monotonic() + limit_s
    folder, prefix = Path(go_file).parent, Path(go_file).name + "."
    while time.monotonic() < deadline:
        if sum(p.name.startswith(prefix) for p in folder.iterdir()) >= racers:
            return
        time.sleep(0.001)  # a poll step: the rival's mark is a file another process makes


def _first_job(queue: JobQueue):  # type: ignore[no-untyped-def]
    for _ in range(500):
        for candidate in queue.scan():
            job = queue.claim_sync(candidate)
            if job is not None:
                return job
        time.sleep(0.01)  # a poll step (bounded by the 500 looks): until a scan finds it ready
    raise SystemExit("nothing to claim")


def hold(root: str, ttl: str) -> None:
    queue = _queue(root, float(ttl))
    job = _first_job(queue)
    print(json.dumps({"job_id": job.job_id, "name": job.name}), flush=True)
    anyio.run(queue.heartbeat, job)


def crash(root: str, step: str) -> None:
    def hook(at: str) -> None:
        if at == step:
            os._exit(9)

    queue = _queue(root, 0.5, crash_hook=hook)
    _first_job(queue)
    raise SystemExit(f"step {step} never reached")


if __name__ == "__main__":
    configure_logging(fmt="json")  # logs to stderr: stdout carries the results
    mode, root, *rest = sys.argv[1:]
    {"race": race, "hold": hold, "crash": crash}[mode](root, *rest)
