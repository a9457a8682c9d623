"""Per-token request rate limiting: a token bucket per Bearer token, plus Retry-After tracking.

Owns: the arithmetic of `--rate-limit` / `--burst` and of `Retry-After` (as seconds or as an
HTTP-date, `--retry-after-format`), and the count of requests that ignored a Retry-After
(`retry_after_violations`, for client tests). Pure: the caller passes `now` (monotonic seconds),
so tests need no clock and no sleeping.
"""

from __future__ import annotations

import email.utils
import math
from dataclasses import dataclass, field
from typing import Literal

RetryAfterFormat = Literal["seconds", "http-date"]

# A client that sleeps exactly Retry-After may wake a hair early by its timer's resolution;
# that is obeying, not violating.
VIOLATION_SLACK_S = 0.02


@dataclass
class Bucket:
    """One token bucket. `tokens` may be fractional; a request needs one whole token."""

    rate: float
    burst: int
    tokens: float
    updated: float
    blocked_until: float = 0.0  # when the last Retry-After we sent expires
    blocked_since: float = 0.0  # when the 429 that set it was decided

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
            self.updated = now


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int = 0  # whole seconds, as HTTP's delay-seconds demands
    violated_retry_after: bool = False


@dataclass
class RateLimiter:
    """Buckets by key (the Bearer token). `rate == 0` disables limiting entirely."""

    rate: float
    burst: int
    # A request that arrives this soon after a 429 was on its way before the client could read
    # it (the emulated latency delays the 429 too): it cannot have disobeyed, so it is no
    # violation. The server sets it from its latency; 0 counts every early arrival.
    in_flight_grace_s: float = 0.0
    buckets: dict[str, Bucket] = field(default_factory=dict)
    violations: int = 0
    limited: int = 0

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def check(self, key: str, now: float) -> Decision:
        """Take one token for `key`, or say how many whole seconds to wait."""
        if not self.enabled:
            return Decision(allowed=True)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = Bucket(self.rate, self.burst, float(self.burst), now)
        violated = (
            bucket.blocked_since + self.in_flight_grace_s < now
            and now + VIOLATION_SLACK_S < bucket.blocked_until
        )
        if violated:
            self.violations += 1
        bucket.refill(now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return Decision(allowed=True, violated_retry_after=violated)
        wait = (1.0 - bucket.tokens) / self.rate
        # Round up so that a client obeying Retry-After always finds a token waiting.
        retry_after = max(1, math.ceil(wait))
        if now >= bucket.blocked_until:  # a new episode: its grace starts now, not at each 429
            bucket.blocked_since = now
        bucket.blocked_until = max(bucket.blocked_until, now + retry_after)
        self.limited += 1
        return Decision(allowed=False, retry_after=retry_after, violated_retry_after=violated)


def retry_after_header(seconds: int, fmt: RetryAfterFormat, wall_now: float) -> str:
    """`Retry-After` as delay-seconds or as an HTTP-date (RFC 9110 §10.2.3), never earlier.

    An HTTP-date has whole-second resolution: the instant is rounded *up*, so a client that
    waits until the date never arrives before the bucket has a token for it.
    """
    if fmt == "seconds":
        return str(seconds)
    return email.utils.formatdate(math.ceil(wall_now) + seconds, usegmt=True)
