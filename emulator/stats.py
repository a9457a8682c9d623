"""Counters behind `GET /_emulator/stats`, for tests and benchmarks to read.

Owns: what was asked (by status, by route template), what was created, voiceprints renamed
and deleted, conflicts, uploads per audio, faults injected, rate-limit and credit refusals,
concurrency. Counters live for one process: a restarted emulator starts from zero (its *state*
persists, its stats do not).
`first_request_at` / `last_request_at` (wall-clock epoch seconds, None before any API request)
let benchmarks time pickup latency and the active window of a run.
Must never influence how a request is answered.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

MAX_THROTTLED_KEPT = 1000
LAG_STEPS_MS = (5, 10, 20, 33, 50)


@dataclass
class Stats:
    total: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_route: Counter[str] = field(default_factory=Counter)
    created: Counter[str] = field(
        default_factory=lambda: Counter(identities=0, audios=0, voiceprints=0, computes=0)
    )
    # Voiceprints renamed (PATCH) and deleted (DELETE) that the emulator carried out.
    lifecycle: Counter[str] = field(default_factory=lambda: Counter(renamed=0, deleted=0))
    conflicts: int = 0
    upload_attempts: Counter[str] = field(default_factory=Counter)  # "owner/space/audio"
    uploads_accepted: int = 0
    bytes_received: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    credit_refusals: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    first_request_at: float | None = None  # when the first API request arrived (epoch s)
    last_request_at: float | None = None  # when the last API request was answered (epoch s)
    # Diagnostics for benchmarks: when 429s were sent (bounded), answers per whole second of
    # the run, and how late the event loop woke (a stalled loop bunches arrivals into 429s).
    throttled_at: list[tuple[float, str]] = field(default_factory=list)
    per_second: Counter[int] = field(default_factory=Counter)
    loop_lag_max_ms: float = 0.0
    loop_lags_over_ms: Counter[int] = field(default_factory=Counter)
    loop_stalls: list[tuple[float, float]] = field(default_factory=list)  # (epoch s, lag ms)

    def started(self) -> None:
        if self.first_request_at is None:
            self.first_request_at = time.time()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def finished(self, route: str, status: str) -> None:
        self.in_flight -= 1
        self.last_request_at = time.time()
        if self.first_request_at is not None:
            self.per_second[int(self.last_request_at - self.first_request_at)] += 1
        self.total += 1
        self.by_status[status] += 1
        self.by_route[route] += 1
        if status == "409":
            self.conflicts += 1

    def throttled(self, route: str) -> None:
        self.rate_limited += 1
        if len(self.throttled_at) < MAX_THROTTLED_KEPT:
            self.throttled_at.append((time.time(), route))

    def loop_woke(self, lag_s: float) -> None:
        """One wake-up of the loop watcher, `lag_s` after it was due."""
        lag_ms = lag_s * 1000
        self.loop_lag_max_ms = max(self.loop_lag_max_ms, lag_ms)
        if lag_ms > LAG_STEPS_MS[2] and len(self.loop_stalls) < MAX_THROTTLED_KEPT:
            self.loop_stalls.append((time.time(), lag_ms))
        for limit in LAG_STEPS_MS:
            if lag_ms > limit:
                self.loop_lags_over_ms[limit] += 1

    def reset(self) -> None:
        """Zero every counter but the requests now in flight."""
        in_flight = self.in_flight
        fresh = Stats()
        self.__dict__.update(fresh.__dict__)
        self.in_flight = self.max_in_flight = in_flight

    def to_wire(self, extra: dict[str, Any]) -> dict[str, Any]:
        return {
            "requests": {
                "total": self.total,
                "by_status": dict(self.by_status),
                "by_route": dict(self.by_route),
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "first_at": self.first_request_at,
                "last_at": self.last_request_at,
            },
            "created": dict(self.created),
            "lifecycle": dict(self.lifecycle),
            "conflicts": self.conflicts,
            "uploads": {
                "accepted": self.uploads_accepted,
                "attempts": sum(self.upload_attempts.values()),
                "attempts_per_audio": dict(self.upload_attempts),
                "bytes_received": self.bytes_received,
            },
            "faults": dict(self.faults),
            "rate_limited": self.rate_limited,
            "throttled_at": [
                {"after_s": round(at - (self.first_request_at or at), 3), "route": route}
                for at, route in self.throttled_at
            ],
            "per_second": [self.per_second[s] for s in range(max(self.per_second, default=-1) + 1)],
            "loop_lag": {
                "max_ms": round(self.loop_lag_max_ms, 1),
                "wakeups_over_ms": {str(k): self.loop_lags_over_ms[k] for k in LAG_STEPS_MS},
                "stalls": [
                    {"after_s": round(at - (self.first_request_at or at), 3), "ms": round(ms, 1)}
                    for at, ms in self.loop_stalls
                ],
            },
            "credit_refusals": self.credit_refusals,
            **extra,
        }
