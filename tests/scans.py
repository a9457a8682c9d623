"""Counting a JobQueue's scans, so producers in tests act after a given scan, not a sleep."""

from __future__ import annotations

import threading

from tests.support import wait_for
from worker.queue.discover import Candidate


class Scans:
    """Counts the queue's scans (they run in worker threads) and what each one saw.

    Pass `scans.saw` as the queue's `on_scan` (`JobQueue(settings, on_scan=scans.saw)`).
    `await scans.reach(n)` returns once n scans have ended: a producer that drops a file after
    `reach(2)` drops it while discovery is watching, with nothing left to find it but events.
    """

    def __init__(self) -> None:
        self.count = 0
        self.seen: list[set[str]] = []  # per scan: the inbox manifest names it saw
        self.ready: list[list[str]] = []  # per scan: the names it yielded as ready
        self._lock = threading.Lock()

    def saw(self, names: frozenset[str], found: list[Candidate]) -> None:
        """The queue's `on_scan` hook: called by each scan as it ends."""
        with self._lock:
            self.seen.append(set(names))
            self.ready.append([c.name for c in found])
            self.count += 1

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
