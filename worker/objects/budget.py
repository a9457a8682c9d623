"""The work folder's disk budget for downloads in progress (`ENROLLER_WORK_DIR_MAX_BYTES`).

Owns: reserving an object's size (known from its HEAD) before its download starts and giving it
back when the download ends, so the bytes being downloaded at once never exceed the budget
however many preflight threads run. A reservation larger than the whole budget is refused at
once (it could never fit) rather than waited for. Threads wait on a condition: downloads run in
the job's preflight threads, not on the event loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from worker.base.errors import EnrollmentFailed


class OverBudget(EnrollmentFailed):
    """The object alone is larger than the whole budget."""


class DiskBudget:
    """Bytes of downloads in progress, at most `max_bytes` (0: no limit)."""

    def __init__(self, max_bytes: int, waiting: Callable[[int], None] | None = None) -> None:
        """`waiting(size)` is told each time a reservation must wait for room (a test's seam)."""
        self.max_bytes = max_bytes
        self._used = 0
        self._cond = threading.Condition()
        self._waiting = waiting

    @property
    def used(self) -> int:
        with self._cond:
            return self._used

    @contextmanager
    def reserve(self, size: int) -> Iterator[None]:
        """Hold `size` bytes of the budget for the block; waits while others hold too much."""
        if self.max_bytes and size > self.max_bytes:
            raise OverBudget(
                f"is {size} bytes, more than the whole work-folder budget "
                f"(ENROLLER_WORK_DIR_MAX_BYTES = {self.max_bytes})"
            )
        with self._cond:
            while self.max_bytes and self._used + size > self.max_bytes:
                if self._waiting is not None:
                    self._waiting(size)
                self._cond.wait()
            self._used += size
        try:
            yield
        finally:
            with self._cond:
                self._used -= size
                self._cond.notify_all()
