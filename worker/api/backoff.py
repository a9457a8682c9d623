"""Retry delays: exponential backoff with full jitter, bounded by attempts and by total time.

Owns: the arithmetic only, as pure functions over an injected random number, so it is tested
without sleeping and without randomness. Deciding *whether* an error may be retried belongs to
the client (it depends on the operation); waiting belongs to the client too.

Why not tenacity: the client's loop mixes outcomes that tenacity would have to be bent around —
a 429 waits for the server's `Retry-After` and must not consume an attempt, a 401 triggers one
sign-in and an immediate resend, a non-idempotent create stops at the first unknown outcome, and
every wait has to go through the shared governor. The delay itself is one line; keeping it here
makes that loop plain code with its rules in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.config.settings import setting_default


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds for retrying one call.

    max_retries: resends after the first attempt (0: never retry).
    max_time: seconds from the first attempt after which no retry is started; a delay that
      would end past it is not slept either, so a call gives up within max_time.
    base, cap: the backoff ceiling for retry n (0-based) is min(cap, base * 2**n).

    A 429 with Retry-After is not bounded here: the server says how long to wait, the client
    waits that long, and the wait is neither a retry nor retry time (api-contract.md §5).
    """

    max_retries: int = setting_default("max_retries")
    max_time: float = setting_default("retry_max_time")
    base: float = 0.25
    cap: float = 10.0


def backoff_ceiling(retry: int, *, base: float, cap: float) -> float:
    """The largest delay before retry number `retry` (0-based): min(cap, base·2^retry)."""
    if retry < 0:
        raise ValueError("retry must be >= 0")
    # 2**retry overflows nothing in Python, but keep the float small for huge retry numbers.
    return min(cap, base * 2.0 ** min(retry, 62))


def full_jitter(retry: int, rand: float, *, base: float, cap: float) -> float:
    """Full jitter (AWS architecture blog): uniform in [0, ceiling). `rand` is in [0, 1).

    Full rather than equal jitter, because many tasks hit the same fault at once (a dropped
    connection pool, a 503 burst) and must not come back in lockstep.
    """
    return rand * backoff_ceiling(retry, base=base, cap=cap)


def next_delay(policy: RetryPolicy, retry: int, elapsed: float, rand: float) -> float | None:
    """Seconds to wait before retry number `retry` (0-based), or None to give up.

    Gives up when `retry` retries were already made (`retry >= max_retries`), or when the wait
    would end after `max_time` seconds since the first attempt (`elapsed` is measured from it).
    """
    if retry >= policy.max_retries:
        return None
    delay = full_jitter(retry, rand, base=policy.base, cap=policy.cap)
    if elapsed + delay >= policy.max_time:
        return None
    return delay
