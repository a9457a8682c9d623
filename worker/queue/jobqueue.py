"""`JobQueue`: the queue parts (discovery, claims, leases) composed as one worker's view of a
shared queue directory.

Its seams are constructor arguments: the clocks (`clock`, the wall clock leases are stamped
with and files age by; `monotonic`, the clock another host's lease is judged by), `host` (whose
clock stamped a lease: this machine's name by default), and the test hooks `crash_hook` (called
between the steps of a claim), `hash_file` (how a claimed manifest is hashed), `on_scan` (told
what each scan saw) and `write_lease` (how a renewal is written).
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio

from worker.base.fsutil import atomic_write_json, sha256_file
from worker.config.settings import Settings
from worker.queue.claim import Claims, CrashHook, HashFile
from worker.queue.discover import Candidate, Discovery, InboxNotes, ScanHook
from worker.queue.lease import LeaseHolder
from worker.queue.leaseguard import LeaseGuard
from worker.queue.paths import ClaimedJob, QueuePaths, setup_folders
from worker.queue.rules import StabilityTracker


class JobQueue:
    """One worker's view of a shared queue directory. Safe to use from many processes at once.

    Blocking file work lives in the `*_sync` methods (usable from threads and subprocesses);
    the async methods run them off the event loop. The methods are those of its parts:
    `discovery` (scan, pending_wait, discover), `claims` (claim, recover_stale, finish, fail)
    and `leases` (renew, heartbeat, release).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        host: str | None = None,
        crash_hook: CrashHook | None = None,
        hash_file: HashFile = sha256_file,
        on_scan: ScanHook | None = None,
        write_lease: Callable[[Path, Any], None] = atomic_write_json,
    ) -> None:
        self.paths = QueuePaths(settings.queue_dir)
        self.worker_id = settings.worker_id
        self.lease_ttl = settings.lease_ttl
        tracker = StabilityTracker(settings.min_age)  # shared: a claimed name is forgotten
        notes = InboxNotes()  # shared: one log line per inbox file and reason
        self.discovery = Discovery(
            self.paths,
            polling=settings.queue_polling,
            poll_interval=settings.poll_interval,
            rescan_interval=settings.rescan_interval,
            clock=clock,
            tracker=tracker,
            notes=notes,
            on_scan=on_scan,
        )
        self.leases = LeaseHolder(
            settings.worker_id,
            settings.lease_ttl,
            host=host if host is not None else socket.gethostname(),
            clock=clock,
            monotonic=monotonic,
            write_lease=write_lease,
        )
        self.claims = Claims(
            self.paths,
            self.leases,
            tracker=tracker,
            notes=notes,
            clock=clock,
            crash_hook=crash_hook,
            hash_file=hash_file,
        )

    def setup(self) -> None:
        """See `setup_folders`: raises QueueSetupError with a message an operator can act on."""
        setup_folders(self.paths)

    # One worker's operations, each handed to the part that owns it (methods, not bound
    # attributes, so that a subclass sees and may wrap every call the service makes).

    def scan(self) -> list[Candidate]:
        return self.discovery.scan()

    def pending_wait(self) -> float | None:
        return self.discovery.pending_wait()

    def discover(self, stop_event: anyio.Event) -> AsyncIterator[Candidate]:
        return self.discovery.discover(stop_event)

    async def claim(self, candidate: Candidate) -> ClaimedJob | None:
        return await self.claims.claim(candidate)

    def claim_sync(self, candidate: Candidate) -> ClaimedJob | None:
        return self.claims.claim_sync(candidate)

    async def recover_stale(self) -> list[ClaimedJob]:
        return await self.claims.recover_stale()

    def recover_stale_sync(self) -> list[ClaimedJob]:
        return self.claims.recover_stale_sync()

    async def finish(self, job: ClaimedJob) -> Path:
        return await self.claims.finish(job)

    def finish_sync(self, job: ClaimedJob) -> Path:
        return self.claims.finish_sync(job)

    async def fail(
        self, job: ClaimedJob, problems: Sequence[Any], error: Mapping[str, Any] | None = None
    ) -> Path:
        return await self.claims.fail(job, problems, error)

    def fail_sync(
        self, job: ClaimedJob, problems: Sequence[Any], error: Mapping[str, Any] | None = None
    ) -> Path:
        return self.claims.fail_sync(job, problems, error)

    def renew(self, job: ClaimedJob, *, released: bool = False) -> None:
        self.leases.renew(job, released=released)

    async def heartbeat(
        self, job: ClaimedJob, interval: float | None = None, guard: LeaseGuard | None = None
    ) -> None:
        await self.leases.heartbeat(job, interval, guard)

    def release(self, job: ClaimedJob) -> None:
        self.leases.release(job)
