"""Classification of error answers into the tree, and errors that never show a secret."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from worker.api import errors as e


@pytest.mark.parametrize(
    ("status", "message", "headers", "cls"),
    [
        (400, "invalid handle", {}, e.BadRequest),
        (401, "invalid token", {}, e.Unauthorized),
        (403, "access denied", {}, e.Forbidden),
        (404, "not found", {}, e.NotFound),
        (405, "method PATCH is not allowed", {"Allow": "GET, DELETE"}, e.MethodNotAllowed),
        (405, "not here", {}, e.MethodNotAllowed),
        (409, "already exists", {}, e.Conflict),
        (413, "too large", {}, e.PayloadTooLarge),
        (422, "too short", {}, e.Unprocessable),
        (429, "rate limit exceeded", {"Retry-After": "2"}, e.RateLimited),
        (429, "slow", {"Retry-After": "Thu, 01 Jan 2026 00:00:03 GMT"}, e.RateLimited),
        (429, "Not enough credits", {}, e.CreditsExhausted),
        # Without Retry-After a 429 is credits whatever it says: the wording is the server's.
        (429, "slow down", {}, e.CreditsExhausted),
        (429, "Quota exhausted for this billing period", {}, e.CreditsExhausted),
        # With one it is throttling, even if the message speaks of credits.
        (429, "credit-based rate limit", {"Retry-After": "1"}, e.RateLimited),
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


def test_method_not_allowed_says_what_the_resource_takes() -> None:
    """405: the API does not offer this; `allow` is what the Allow header says it does take."""
    error = e.error_from_response(405, "no rename", {"Allow": "GET, head ,DELETE"})
    assert isinstance(error, e.MethodNotAllowed) and isinstance(error, e.HttpStatusError)
    assert error.allow == ("GET", "HEAD", "DELETE") and not error.transient
    bare = e.error_from_response(405, "no rename", {"Allow": ""})
    assert isinstance(bare, e.MethodNotAllowed) and bare.allow == ()


NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_rate_limited_carries_retry_after() -> None:
    error = e.error_from_response(429, "slow", {"Retry-After": "1.5"})
    assert isinstance(error, e.RateLimited) and error.retry_after == 1.5
    dated = e.error_from_response(
        429, "slow", {"Retry-After": "Thu, 01 Jan 2026 00:00:07 GMT"}, now=NOW
    )
    assert isinstance(dated, e.RateLimited) and dated.retry_after == 7.0
    unreadable = e.error_from_response(429, "slow", {"Retry-After": "soon"})
    assert isinstance(unreadable, e.RateLimited) and unreadable.retry_after is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        (" 0.25 ", 0.25),
        ("-4", 0.0),
        ("soon", None),
        (None, None),
        ("nan", None),
        ("", None),
        # HTTP-dates (RFC 9110): the preferred IMF-fixdate and the two obsolete forms.
        ("Thu, 01 Jan 2026 00:00:03 GMT", 3.0),
        ("Thursday, 01-Jan-26 00:01:00 GMT", 60.0),
        ("Thu Jan  1 00:00:10 2026", 10.0),
        ("Wed, 31 Dec 2025 23:59:00 GMT", 0.0),  # already past: go now
        ("Thu, 01 Jan 2026 25:00:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert e.parse_retry_after(value, NOW) == seconds


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
