"""A long wait the API asked for: a `Retry-After` above `ENROLLER_MAX_RETRY_AFTER`.

Owns: the one place that knows the API asked the whole process to wait longer than the operator
allows a request to wait (api-contract.md §5, 429), until when, and who wants to know. The
request loop declares it; the service (`run --once` checkpoints its jobs and exits 75) and the
operators' views (status, /healthz, /metrics) read it; one log line per pause, not one per
request. A daemon keeps waiting: the governor's pause holds every request until then.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog

from worker.api.errors import ApiPaused

log = structlog.get_logger("worker.api")

Listener = Callable[[datetime], None]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ServerPause:
    """Until when the API asked every request to wait, when that is longer than allowed.

    `listen(fn)` calls `fn(until)` once per pause, when it begins; a request asking again
    while it lasts may move its end later, silently.
    """

    def __init__(self, max_wait: float, now: Callable[[], datetime] = _utc_now) -> None:
        self.max_wait = max_wait
        self.until: datetime | None = None
        # Set by `run --once`: while a pause is active, requests raise `ApiPaused` unsent
        # instead of waiting (the service checkpoints its jobs and exits 75).
        self.stops_requests = False
        self._now = now
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def too_long(self, wait: float) -> bool:
        """Whether a wait the server asked for is above the bound: not obeyed blindly."""
        return wait > self.max_wait

    def active(self) -> datetime | None:
        """The end of the pause in progress, or None."""
        if self.until is not None and self.until > self._now():
            return self.until
        return None

    def check(self, *, method: str, route: str) -> None:
        """Raise `ApiPaused` when requests must not wait out the pause in progress."""
        until = self.active() if self.stops_requests else None
        if until is not None:
            raise ApiPaused(until, method=method, route=route)

    def declare(self, wait: float, *, route: str) -> datetime:
        """The API asked for `wait` seconds (above the bound): record and tell, once a pause."""
        until = self._now() + timedelta(seconds=wait)
        current = self.active()
        if current is not None:  # the same pause, asked again: it may end later, no new line
            self.until = max(current, until)
            return self.until
        self.until = until
        log.warning(
            "api.paused",
            until=until.isoformat(timespec="seconds"),
            retry_after=round(wait, 3),
            max_retry_after=self.max_wait,
            route=route,
        )
        for listener in self._listeners:
            listener(until)
        return until
