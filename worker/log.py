"""structlog setup, and the processor that keeps secrets out of every log line.

Owns: the only global logging state of the worker. Modules log with `structlog.get_logger()`
and bind `job_id` / `identity`; they never format secrets themselves, and never configure logging.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

# Keys whose values are secrets whatever they hold.
SECRET_KEYS = frozenset(
    {"api_key", "apikey", "password", "api_password", "token", "authorization", "secret"}
)
MASK = "********"
_BEARER = re.compile(r"(Bearer\s+)[^\s'\"]+", re.IGNORECASE)


class SecretRedactor:
    """Masks known secret values and secret-named keys anywhere in an event dict."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def add(self, secret: str) -> None:
        if secret and secret not in self._secrets:
            self._secrets = sorted([*self._secrets, secret], key=len, reverse=True)

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                value = value.replace(secret, MASK)
            return _BEARER.sub(r"\1" + MASK, value)
        if isinstance(value, dict):
            return {
                k: (MASK if str(k).lower() in SECRET_KEYS else self.scrub(v))
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return type(value)(self.scrub(v) for v in value)
        if isinstance(value, BaseException):
            return self.scrub(repr(value))
        return value

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            if key.lower() in SECRET_KEYS:
                event_dict[key] = MASK
            else:
                event_dict[key] = self.scrub(event_dict[key])
        return event_dict


REDACTOR = SecretRedactor()


def _stderr_logger(*args: Any) -> structlog.PrintLogger:
    return structlog.PrintLogger(sys.stderr)


def configure_logging(level: str = "info", fmt: str = "auto", secrets: Iterable[str] = ()) -> None:
    """Configure structlog once per process: JSON lines off a TTY, console on one."""
    for secret in secrets:
        REDACTOR.add(secret)
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            REDACTOR,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        # Resolved per logger, not once: stderr may be replaced (tests, daemons re-opening it).
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
