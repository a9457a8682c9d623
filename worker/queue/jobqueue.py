"""`JobQueue`: the queue parts (discovery, claims, leases) put together as one worker's view of
a shared queue directory."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from worker.config.settings import Settings
from worker.queue.claim import Claims
from worker.queue.discover import Discovery, InboxNotes
from worker.queue.paths import (
    QueuePaths,
    setup_folders,
)
from worker.queue.rules import LeaseWatch, StabilityTracker


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
