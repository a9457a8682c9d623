"""Each reason the request loop retries or stops, as a table of cases (api/retry_rules.py)."""

from __future__ import annotations

import pytest

from worker.api import errors as e
from worker.api.backoff import RetryPolicy
from worker.api.retry_rules import (
    MAX_THROTTLES_PER_CALL,
    Attempts,
    OutOfCredits,
    Retry,
    RetryIn,
    SignInAgain,
    Stop,
    Throttled,
    WaitLong,
    next_step,
)

POLICY = RetryPolicy(max_retries=3, max_time=60.0)
FRESH = Attempts()
SPENT = Attempts(retries=3)  # the policy allows no more


def server(method: str = "POST") -> e.ServerError:
    return e.ServerError("busy", status=503, method=method, route="/r")


def unknown() -> e.OutcomeUnknown:
    return e.OutcomeUnknown("read timeout", kind="timeout", method="POST", route="/r")


def step(error: e.ApiError, **kw: object) -> object:
    args: dict[str, object] = {
        "method": "POST",
        "retry": Retry.SAFE,
        "credentials": False,
        "so_far": FRESH,
        "policy": POLICY,
        "jitter": lambda: 0.0,  # full jitter at 0: a zero delay
    }
    args.update(kw)
    return next_step(error, **args)  # type: ignore[arg-type]


CASES = [
    # (name, error, keyword overrides, what the loop must do)
    ("401 with a token from credentials: sign in again", e.Unauthorized("expired"),
     {"credentials": True}, SignInAgain()),
    ("401 with an API key: stop", e.Unauthorized("bad key"), {}, "stop"),
    ("401 again after signing in again: stop", e.Unauthorized("no"),
     {"credentials": True, "so_far": Attempts(renewed=True)}, "stop"),
    ("429 without Retry-After: out of credits", e.CreditsExhausted("Not enough credits"),
     {}, OutOfCredits()),
    ("429 with Retry-After: wait that long", e.RateLimited("slow", retry_after=7.5), {},
     Throttled(7.5)),
    ("429 with an unreadable Retry-After: a retry like any other", e.RateLimited("slow"), {},
     RetryIn(0.0, False)),
    ("429 with an unreadable Retry-After, retries spent: stop loudly", e.RateLimited("slow"),
     {"so_far": SPENT}, "gave_up"),
    ("429 with Retry-After within the bound, retries spent or not",
     e.RateLimited("s", retry_after=300.0), {"so_far": SPENT, "max_wait": 300.0},
     Throttled(300.0)),
    ("429 with Retry-After above the bound: a long wait, declared",
     e.RateLimited("s", retry_after=999999.0), {"max_wait": 300.0}, WaitLong(999999.0)),
    ("429 with Retry-After, the call throttled too often: stop loudly",
     e.RateLimited("s", retry_after=1.0), {"so_far": Attempts(throttles=MAX_THROTTLES_PER_CALL)},
     "gave_up"),
    ("5xx to a SAFE write: retry, may have taken effect", server(), {}, RetryIn(0.0, True)),
    ("5xx to a read: retry, nothing done", server("GET"), {"method": "GET"}, RetryIn(0.0, False)),
    ("5xx to an UNSAFE call: stop as an unknown outcome", server(), {"retry": Retry.UNSAFE},
     "unknown"),
    ("unknown outcome of a SAFE call: retry", unknown(), {}, RetryIn(0.0, True)),
    ("unknown outcome of an UNSAFE call: stop", unknown(), {"retry": Retry.UNSAFE}, "gave_up"),
    ("not sent, even UNSAFE: retry", e.NotSent("refused"), {"retry": Retry.UNSAFE},
     RetryIn(0.0, False)),
    ("not sent, retries spent: stop loudly", e.NotSent("refused"), {"so_far": SPENT}, "gave_up"),
    ("5xx, retries spent: stop loudly", server(), {"so_far": SPENT}, "gave_up"),
    ("409 after an unknown outcome: our own effect", e.Conflict("done"),
     {"so_far": Attempts(unknown_before=True)}, "own"),
    ("409 on a first attempt: the server's", e.Conflict("done"), {}, "stop"),
    ("404: stop", e.NotFound("no"), {}, "stop"),
    ("422: stop", e.Unprocessable("too short"), {}, "stop"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("error", "kw", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_reason_to_retry_or_stop(error: e.ApiError, kw: dict, expected: object) -> None:
    got = step(error, **kw)
    if expected == "stop":
        assert got == Stop(error)
    elif expected == "gave_up":
        assert got == Stop(error, gave_up=True)
    elif expected == "own":
        assert got == Stop(error, own_effect=True)
    elif expected == "unknown":
        assert isinstance(got, Stop) and got.gave_up
        assert isinstance(got.error, e.OutcomeUnknown) and got.error.kind == "server"
        assert got.error.status == 503 and got.error.route == "/r"
    else:
        assert got == expected


def test_jitter_is_drawn_only_when_a_backoff_delay_is_computed() -> None:
    drawn: list[int] = []

    def jitter() -> float:
        drawn.append(1)
        return 0.5

    step(e.RateLimited("slow", retry_after=1.0), jitter=jitter)
    step(e.NotFound("no"), jitter=jitter)
    assert drawn == []
    got = step(server(), jitter=jitter)
    assert drawn == [1] and isinstance(got, RetryIn) and got.delay > 0
