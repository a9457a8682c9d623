"""Why the request loop sends a call again or stops: one small pure function per reason.

Owns: the meaning of one failed attempt for the loop (api-contract.md §2 and §5, the retry
rules of client.py's docstring): sign in again (401 in credentials mode, once), out of credits
(429 without Retry-After), throttled (429 with it: waited out up to a bound and a count, a
longer one declared as a pause, an unreadable one a retry like any other), a 5xx to an UNSAFE
call (an unknown outcome), retry with backoff (not sent; or SAFE and 5xx or
unknown), and what a final error says (a 409 after an unknown outcome is likely our own
effect; a transport give-up is logged). `next_step` puts them in that order. No I/O, no
clock, no logging: the loop (loop.py) acts on the answer.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from worker.api.backoff import RetryPolicy, next_delay
from worker.api.errors import (
    UNUSABLE_KINDS,
    ApiError,
    Conflict,
    CreditsExhausted,
    NotSent,
    OutcomeUnknown,
    RateLimited,
    ServerError,
    Unauthorized,
)

# 429s with a Retry-After one call may wait out: a server that throttles one call forever
# must not keep its step going forever (the step then counts one failure).
MAX_THROTTLES_PER_CALL = 50


class Retry(enum.Enum):
    """Whether a request may be repeated after an unknown outcome (see client.py)."""

    SAFE = "safe"
    UNSAFE = "unsafe"


@dataclass(frozen=True)
class SignInAgain:
    """The session token was refused: sign in again and resend (once per call)."""


@dataclass(frozen=True)
class OutOfCredits:
    """The owner cannot pay: mark the governor and raise."""


@dataclass(frozen=True)
class Throttled:
    """Wait `wait` seconds (the server's, not a failure's: no retry time spent), resend."""

    wait: float


@dataclass(frozen=True)
class WaitLong:
    """A Retry-After above `ENROLLER_MAX_RETRY_AFTER`: not obeyed blindly. The loop declares
    the pause (`pause.ServerPause`: `run --once` checkpoints, a daemon shows it) and waits."""

    wait: float


@dataclass(frozen=True)
class RetryIn:
    """Resend after `delay`; `unknown`: this attempt may have taken effect."""

    delay: float
    unknown: bool


@dataclass(frozen=True)
class Stop:
    """Raise `error` to the caller; `gave_up`: a transport or server failure outlasted the
    retries (worth a warning); `own_effect`: a 409 most likely of an earlier attempt."""

    error: ApiError
    gave_up: bool = False
    own_effect: bool = False


Step = SignInAgain | OutOfCredits | Throttled | WaitLong | RetryIn | Stop


@dataclass(frozen=True)
class Attempts:
    """What the loop has done so far for one call."""

    retries: int = 0  # resends spent on failures (and on unreadable Retry-After values)
    throttles: int = 0  # 429s with a readable Retry-After waited out
    elapsed: float = 0.0  # seconds spent, throttle waits excluded
    renewed: bool = False  # signed in again already
    unknown_before: bool = False  # an earlier attempt may have taken effect


def signs_in_again(error: ApiError, *, credentials: bool, renewed: bool) -> bool:
    """A 401 with a session token from credentials: the token expired. Once only; an API key
    refused is refused for good."""
    return isinstance(error, Unauthorized) and credentials and not renewed


def out_of_credits(error: ApiError) -> bool:
    """A 429 without Retry-After is credits, whatever its wording (api-contract.md §5)."""
    return isinstance(error, CreditsExhausted)


def throttle_step(
    error: ApiError,
    so_far: Attempts,
    policy: RetryPolicy,
    jitter: Callable[[], float],
    max_wait: float,
) -> Step | None:
    """A 429 with Retry-After, or None for another error.

    Readable: wait it out (`Throttled`), unless it is above `max_wait` (`WaitLong`) or this
    call was throttled `MAX_THROTTLES_PER_CALL` times already (`Stop`). Unreadable: a retry
    like any other, with backoff, counted against the call's retry budget.
    """
    if not isinstance(error, RateLimited):
        return None
    if error.retry_after is None:
        delay = next_delay(policy, so_far.retries, so_far.elapsed, jitter())
        return RetryIn(delay, False) if delay is not None else Stop(error, gave_up=True)
    if so_far.throttles >= MAX_THROTTLES_PER_CALL:
        return Stop(error, gave_up=True)
    if error.retry_after > max_wait:
        return WaitLong(error.retry_after)
    return Throttled(error.retry_after)


def as_unknown_if_unsafe(error: ApiError, retry: Retry) -> ApiError:
    """A 5xx to a call that must not run twice may have been done: its outcome is unknown."""
    if isinstance(error, ServerError) and retry is Retry.UNSAFE:
        return OutcomeUnknown(
            error.message,
            kind="server",
            status=error.status,
            method=error.method,
            route=error.route,
            attempts=error.attempts,
        )
    return error


def retryable(error: ApiError, retry: Retry) -> bool:
    """A request that never left may be resent whatever the call; anything else only if SAFE,
    and never an answer that came but cannot be used (a redirect, too large, unreadable)."""
    if isinstance(error, OutcomeUnknown) and error.kind in UNUSABLE_KINDS:
        return False  # an answer came and cannot be used: the same one would come again
    return isinstance(error, NotSent) or (
        retry is Retry.SAFE and isinstance(error, ServerError | OutcomeUnknown)
    )


def may_have_taken_effect(error: ApiError, method: str) -> bool:
    """A write answered 5xx may have been done before the failure, like one that timed out."""
    return isinstance(error, OutcomeUnknown) or (isinstance(error, ServerError) and method != "GET")


def gave_up(error: ApiError) -> bool:
    """Failures of the transport or the server, as opposed to answers about the request."""
    return isinstance(error, OutcomeUnknown | NotSent | ServerError)


def next_step(
    error: ApiError,
    *,
    method: str,
    retry: Retry,
    credentials: bool,
    so_far: Attempts,
    policy: RetryPolicy,
    jitter: Callable[[], float],
    max_wait: float = float("inf"),
) -> Step:
    """What the loop does after the failed attempt `error`, reason by reason, in order.

    `credentials`: the call carries a token from a sign-in (not an API key, not the sign-in
    itself). `jitter` is drawn only when a backoff delay is computed. `max_wait`: the longest
    Retry-After obeyed as it is (`ENROLLER_MAX_RETRY_AFTER`).
    """
    if signs_in_again(error, credentials=credentials, renewed=so_far.renewed):
        return SignInAgain()
    if out_of_credits(error):
        return OutOfCredits()
    if (throttle := throttle_step(error, so_far, policy, jitter, max_wait)) is not None:
        return throttle
    error = as_unknown_if_unsafe(error, retry)
    if retryable(error, retry):
        delay = next_delay(policy, so_far.retries, so_far.elapsed, jitter())
        if delay is not None:
            return RetryIn(delay, may_have_taken_effect(error, method))
    own = isinstance(error, Conflict) and so_far.unknown_before
    return Stop(error, gave_up=gave_up(error), own_effect=own)
