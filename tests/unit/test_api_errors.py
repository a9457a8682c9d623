"""Classification of error answers into the tree, and errors that never show a secret."""

from __future__ import annotations

import pytest

from worker.api import errors as e


@pytest.mark.parametrize(
    ("status", "message", "headers", "cls"),
    [
        (400, "invalid handle", {}, e.BadRequest),
        (401, "invalid token", {}, e.Unauthorized),
        (403, "access denied", {}, e.Forbidden),
        (404, "not found", {}, e.NotFound),
        (409, "already exists", {}, e.Conflict),
        (413, "too large", {}, e.PayloadTooLarge),
        (422, "too short", {}, e.Unprocessable),
        (429, "rate limit exceeded", {"Retry-After": "2"}, e.RateLimited),
        (429, "Not enough credits", {}, e.CreditsExhausted),
        (429, "slow down", {}, e.RateLimited),  # no header and no credits word: a rate limit
        (500, "boom", {}, e.ServerError),
        (503, "unavailable", {"Retry-After": "1"}, e.ServerError),
        (418, "teapot", {}, e.HttpStatusError),
    ],
)
def test_status_classification(
    status: int, message: str, headers: dict[str, str], cls: type[e.HttpStatusError]
) -> None:
    error = e.error_from_response(status, message, headers, method="GET", route="/x/{y}")
    assert type(error) is cls
    assert isinstance(error, e.OutcomeKnown)
    assert error.status == status and error.message == message
    assert str(error) == f"GET /x/{{y}}: HTTP {status}: {message}"


def test_rate_limited_carries_retry_after() -> None:
    error = e.error_from_response(429, "slow", {"Retry-After": "1.5"})
    assert isinstance(error, e.RateLimited) and error.retry_after == 1.5
    assert e.error_from_response(429, "slow", {}).retry_after is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("3", 3.0), (" 0.25 ", 0.25), ("-4", 0.0), ("soon", None), (None, None), ("nan", None)],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert e.parse_retry_after(value) == seconds


def test_server_message_reads_the_contract_body_or_an_excerpt() -> None:
    assert e.server_message(b'{"message": "access denied"}', "HTTP 403") == "access denied"
    assert e.server_message(b"<html>bad gateway</html>", "HTTP 502") == "<html>bad gateway</html>"
    assert e.server_message(b"", "HTTP 502") == "HTTP 502"
    assert len(e.server_message(b"x" * 5000, "f")) == 200


def test_the_tree_says_what_the_caller_may_do() -> None:
    assert issubclass(e.NotSent, e.OutcomeKnown)
    assert issubclass(e.CreditsExhausted, e.HttpStatusError)
    assert not issubclass(e.OutcomeUnknown, e.OutcomeKnown)
    unknown = e.OutcomeUnknown("read timeout", kind="timeout", method="POST", route="/a")
    assert str(unknown) == "POST /a: outcome unknown (timeout): read timeout"
    server = e.OutcomeUnknown("boom", kind="server", status=500)
    assert "HTTP 500" in str(server)
    assert repr(unknown).startswith("OutcomeUnknown(")
