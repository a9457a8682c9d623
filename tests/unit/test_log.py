"""The redaction processor: secrets never reach a log line."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from tests.logreset import reset_logging
from worker.base.log import SecretRedactor, configure_logging
from worker.base.masking import MASK


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


def test_url_credentials_are_masked_in_any_field_even_when_unknown() -> None:
    event = SecretRedactor()(
        None,
        "error",
        {
            "event": "cannot reach https://bob:hunter2@api.example.com/v1/user",
            "nested": {"urls": ["redis://:r3dis-pw@cache:6379/0"]},
        },
    )
    assert event["event"] == f"cannot reach https://{MASK}@api.example.com/v1/user"
    assert event["nested"]["urls"] == [f"redis://{MASK}@cache:6379/0"]


def test_library_lines_are_masked_too(capsys: pytest.CaptureFixture[str]) -> None:
    """A stdlib logger (aiohttp, asyncio) goes through the same redaction as structlog."""
    configure_logging("info", "json", ["k-known-1234"])
    try:
        logging.getLogger("aiohttp.client").error(
            "retrying http://u:p4ss-w0rd@h/v1 with k-known-1234"
        )
        structlog.get_logger("t").info("start", api_url="http://u:p4ss-w0rd@h/v1")
    finally:
        reset_logging()
    err = capsys.readouterr().err
    assert "p4ss-w0rd" not in err and "k-known-1234" not in err
    lines = [json.loads(line) for line in err.splitlines()]
    assert lines[0]["event"] == f"retrying http://{MASK}@h/v1 with {MASK}"
    assert lines[1]["api_url"] == f"http://{MASK}@h/v1"
