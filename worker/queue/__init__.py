"""The spool directory (design.md §3): discover, claim, lease, finish, fail and recover jobs.

Owns: every file operation on `<queue_dir>/{inbox,active,done,failed,reports}` except the
contents of the journal and the reports, which belong to `journal.py` / `report.py` (this
package only tells them where to write). It never parses a manifest and never calls the API.

One concern a module: `paths.py` (layout, names, folder set-up), `discover.py` (which inbox
files are ready), `claim.py` (every move of a job: claim, settle, recover, finish, fail),
`lease.py` (the lease protocol and heartbeat). The pure rules are in `worker/queue_rules.py`.
`JobQueue` puts the parts together as one worker's view of the queue. Test seams are patched
where they are used: `worker.queue.claim.crash_hook`, `worker.queue.claim.sha256_file`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from worker.queue.claim import Claims, sha256_file
from worker.queue.discover import Candidate, Discovery, InboxNotes
from worker.queue.lease import LeaseLost, lease_generations, read_lease
from worker.queue.paths import (
    FOLDERS,
    JOURNAL_NAME,
    MANIFEST_DIR,
    PROGRESS_NAME,
    STAGING_PREFIX,
    STARTS_NAME,
    ClaimedJob,
    QueuePaths,
    QueueSetupError,
    ReportPaths,
    lease_file,
    setup_folders,
)
from worker.queue_rules import LeaseWatch, StabilityTracker
from worker.settings import Settings

__all__ = [
    "FOLDERS",
    "JOURNAL_NAME",
    "MANIFEST_DIR",
    "PROGRESS_NAME",
    "STAGING_PREFIX",
    "STARTS_NAME",
    "Candidate",
    "ClaimedJob",
    "JobQueue",
    "LeaseLost",
    "QueuePaths",
    "QueueSetupError",
    "ReportPaths",
    "lease_file",
    "lease_generations",
    "read_lease",
    "sha256_file",
]


class JobQueue(Discovery, Claims):
    """One worker's view of a shared queue directory. Safe to use from many processes at once.

    Blocking file work lives in the `*_sync` methods (usable from threads and subprocesses);
    the async methods run them off the event loop.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.paths = QueuePaths(settings.queue_dir)
        self.worker_id = settings.worker_id
        self.lease_ttl = settings.lease_ttl
        self.polling = settings.queue_polling
        self.poll_interval = settings.poll_interval
        self.rescan_interval = settings.rescan_interval
        self._clock = clock
        self._tracker = StabilityTracker(settings.min_age)
        self._notes = InboxNotes()
        self._host = socket.gethostname()
        self._monotonic = monotonic
        self._watch = LeaseWatch()  # leases of other hosts, judged by our own clock

    def setup(self) -> None:
        """See `setup_folders`: raises QueueSetupError with a message an operator can act on."""
        setup_folders(self.paths)
