"""A clock that moves only when a test says so, for code that takes `clock=` (e.g. JobQueue).

It starts at the real epoch time (the whole second before now), so that file times (mtime)
written meanwhile stay comparable with it; from then on only `advance` moves it. Leases,
min_age and staleness are then decided by the test's own arithmetic, never by how fast a
loaded machine ran the test.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


class FakeClock:
    def __init__(self, start: float | None = None) -> None:
        # A whole second: a lease stores its heartbeat to the microsecond, exactly then.
        self.now = float(int(time.time())) if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def utc(self) -> datetime:
        """The same instant as an aware UTC datetime, for the emulator's `clock=`."""
        return datetime.fromtimestamp(self.now, UTC)
