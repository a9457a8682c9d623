"""The redaction processor: secrets never reach a log line."""

from __future__ import annotations

from worker.log import MASK, SecretRedactor


def test_known_secret_is_masked_in_any_field() -> None:
    redact = SecretRedactor(["k3y-value"])
    event = redact(
        None, "info", {"event": "calling with k3y-value", "nested": {"x": ["k3y-value"]}}
    )
    assert "k3y-value" not in repr(event)
    assert event["event"] == f"calling with {MASK}"


def test_secret_named_keys_are_masked() -> None:
    event = SecretRedactor()(None, "info", {"event": "e", "password": "pw", "Authorization": "x"})
    assert event["password"] == MASK and event["Authorization"] == MASK


def test_bearer_tokens_are_masked_even_when_unknown() -> None:
    event = SecretRedactor()(None, "info", {"event": "header Bearer abc.def-123 sent"})
    assert "abc.def-123" not in event["event"]


def test_exception_values_are_scrubbed() -> None:
    event = SecretRedactor(["tok"])(None, "error", {"event": "e", "error": RuntimeError("bad tok")})
    assert "tok" not in event["error"].replace(MASK, "")
