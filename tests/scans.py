"""Counting a JobQueue's scans, so producers in tests act after a given scan, not a sleep."""

from __future__ import annotations

import threading

from tests.support import wait_for
from worker.queue.discover import Candidate
from worker.queue.jobqueue import JobQueue


class Scans:
    """Counts the queue's scans (they run in worker threads) and what each one saw.

    `await scans.reach(n)` returns once n scans have ended: a producer that drops a file after
    `reach(2)` drops it while discovery is watching, with nothing left to find it but events.
    """

    def __init__(self, queue: JobQueue) -> None:
        self.count = 0
        self.seen: list[set[str]] = []  # per scan: the inbox names the tracker knew after it
        self.ready: list[list[str]] = []  # per scan: the names it yielded as ready
        self._lock = threading.Lock()
        inner = queue.scan

        def scan() -> list[Candidate]:
            found = inner()
            with self._lock:
                self.seen.append(set(queue._tracker._seen))
                self.ready.append([c.name for c in found])
                self.count += 1
            return found

        queue.scan = scan  # type: ignore[method-assign]

    async def reach(self, n: int) -> None:
        # Scans run in threads: nothing to await but the count.
        await wait_for(lambda: self.count >= n, 60, f"scan number {n}", step=0.005)

    async def until_seen(self, name: str) -> int:
        """Wait for a scan that saw `name` in inbox/; its number (1-based)."""

        def seen_in() -> int:
            with self._lock:
                return next((i + 1 for i, names in enumerate(self.seen) if name in names), 0)

        number: int = await wait_for(seen_in, 60, f"a scan seeing {name}", step=0.005)
        return number

    def first_ready(self, name: str) -> int:
        """The number (1-based) of the first scan that yielded `name`."""
        return next(i + 1 for i, names in enumerate(self.ready) if name in names)
