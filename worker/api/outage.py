"""Whether the API can be reached, told once when an outage starts and once when it ends.

Owns: `OutageTracker`, fed by every attempt of the request loop (answered, or failed without a
usable answer: a refused or dropped connection, a timeout, a 5xx), and its `ApiState` for the
heartbeat, `/healthz`, `enroller healthcheck` and `enroller status`. An outage is declared after
`declare_after` failed attempts in a row with no answer between them (one 503 is a blip, which
the retry line tells); then one warning, `api_unreachable`, and while it lasts the loop writes
its per-attempt lines at debug level. The first answer ends it with one warning,
`api_reachable_again`, giving its length and the attempts it cost: a 75 s outage is two lines,
not one per attempt (issue 30). It observes only: no retry decision reads it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

import structlog
from pydantic import BaseModel

log = structlog.get_logger("worker.api")

DECLARE_AFTER = 3


class ApiState(BaseModel):
    """The API as this worker last found it."""

    state: Literal["unknown", "reachable", "unreachable"] = "unknown"
    since: float | None = (
        None  # wall time (epoch s) the state began: the first failure of an outage
    )
    failed_attempts: int = 0  # in a row, with no answer between them
    last_error: str | None = None  # the kind of the last failure ("reset", "503"…)


class OutageTracker:
    """The API's reachability, from the attempts the loop makes (see the module docstring)."""

    def __init__(
        self, clock: Callable[[], float] = time.time, declare_after: int = DECLARE_AFTER
    ) -> None:
        self._clock = clock
        self._declare_after = declare_after
        self._state = ApiState()
        self._first_failure: float | None = None

    @property
    def active(self) -> bool:
        """Whether an outage is declared: per-attempt lines are then written at debug level."""
        return self._state.state == "unreachable"

    def answered(self) -> None:
        """An attempt got an HTTP answer below 500 (a 4xx, even a 429, is the API speaking)."""
        now = self._clock()
        if self.active and self._first_failure is not None:
            log.warning(
                "api_reachable_again",
                outage_s=round(now - self._first_failure, 1),
                failed_attempts=self._state.failed_attempts,
            )
        if self._state.state != "reachable":
            self._state = ApiState(state="reachable", since=now)
        elif self._state.failed_attempts:
            self._state = self._state.model_copy(update={"failed_attempts": 0})
        self._first_failure = None

    def failed(self, kind: str) -> None:
        """An attempt got no usable answer: `kind` is the transport's failure or the 5xx status."""
        now = self._clock()
        if self._first_failure is None:
            self._first_failure = now
        failures = self._state.failed_attempts + 1
        update: dict[str, object] = {"failed_attempts": failures, "last_error": kind}
        if not self.active and failures >= self._declare_after:
            update.update(state="unreachable", since=self._first_failure)
            log.warning(
                "api_unreachable",
                failed_attempts=failures,
                error=kind,
                note="retrying with backoff; one line when it answers again",
            )
        self._state = self._state.model_copy(update=update)

    def snapshot(self) -> ApiState:
        return self._state.model_copy()
