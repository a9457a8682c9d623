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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from worker.base.fsutil import atomic_write_json, sha256_file
from worker.config.settings import Settings
from worker.queue.claim import Claims, CrashHook, HashFile
from worker.queue.discover import Discovery, InboxNotes, ScanHook
from worker.queue.lease import LeaseHolder
from worker.queue.paths import QueuePaths, setup_folders
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
        self.scan = self.discovery.scan
        self.pending_wait = self.discovery.pending_wait
        self.discover = self.discovery.discover
        self.claim = self.claims.claim
        self.claim_sync = self.claims.claim_sync
        self.recover_stale = self.claims.recover_stale
        self.recover_stale_sync = self.claims.recover_stale_sync
        self.finish = self.claims.finish
        self.finish_sync = self.claims.finish_sync
        self.fail = self.claims.fail
        self.fail_sync = self.claims.fail_sync
        self.renew = self.leases.renew
        self.heartbeat = self.leases.heartbeat
        self.release = self.leases.release

    def setup(self) -> None:
        """See `setup_folders`: raises QueueSetupError with a message an operator can act on."""
        setup_folders(self.paths)
