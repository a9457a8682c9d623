"""structlog setup, and the processor that keeps secrets out of every log line.

Owns: the only global logging state of the worker. Modules log with `structlog.get_logger()`
and bind `job_id` / `identity`; they never format secrets themselves, and never configure logging.
Masked in every line: known secret values, secret-named keys, Bearer tokens, and the user-info
of any URL (`https://********@host`), known or not.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

from worker.base.masking import MASK, mask_url_userinfo

# Keys whose values are secrets whatever they hold.
SECRET_KEYS = frozenset(
    {"api_key", "apikey", "password", "api_password", "token", "authorization", "secret"}
)
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
            return mask_url_userinfo(_BEARER.sub(r"\1" + MASK, value))
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

# Events dropped while something else shows the same information (the live progress bar shows
# what `job_progress` lines would say). Mutated only through `quiet_events`.
_QUIET: set[str] = set()


def _drop_quiet(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    if event_dict.get("event") in _QUIET:
        raise structlog.DropEvent
    return event_dict


def quiet_events(*events: str, quiet: bool = True) -> None:
    """Silence (or restore) events that a live display already shows, e.g. `job_progress`."""
    if quiet:
        _QUIET.update(events)
    else:
        _QUIET.difference_update(events)


def _stderr_logger(*args: Any) -> structlog.PrintLogger:
    return structlog.PrintLogger(sys.stderr)


class _StderrHandler(logging.Handler):
    """A stdlib handler writing to the *current* sys.stderr (tests and rich swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # a log line must never take the worker down
            self.handleError(record)


_STDLIB_HANDLER: _StderrHandler | None = None


# Libraries whose debug output carries credentials (request signing, request headers).
CREDENTIAL_LOGGERS = ("botocore", "aiobotocore", "s3transfer")


def use_json_logs(fmt: str = "auto") -> bool:
    """JSON lines when asked, or on `auto` when stderr is not a terminal (containers, CI)."""
    return fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())


def configure_logging(level: str = "info", fmt: str = "auto", secrets: Iterable[str] = ()) -> None:
    """Configure structlog once per process: JSON lines off a TTY, console on one.

    The stdlib root logger (aiohttp, asyncio, watchfiles) is routed through the same renderer
    and the same redaction at the same level, so no library line bypasses the secret filter.
    Calling it again replaces the previous configuration instead of stacking handlers.
    """
    global _STDLIB_HANDLER
    for secret in secrets:
        REDACTOR.add(secret)
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json_logs(fmt)
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            _drop_quiet,
            structlog.processors.format_exc_info,
            REDACTOR,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        # Resolved per logger, not once: stderr may be replaced (tests, daemons re-opening it).
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )

    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                *shared,
                structlog.stdlib.add_logger_name,
                structlog.processors.format_exc_info,
                REDACTOR,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    # botocore's debug lines print each request's canonical form and headers: the session
    # token, the signature and the access key id. No redactor knows those (they are the AWS
    # chain's, not settings), so those loggers never go below info, whatever the level.
    for name in CREDENTIAL_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric_level, logging.INFO))
    root = logging.getLogger()
    if _STDLIB_HANDLER is not None:
        root.removeHandler(_STDLIB_HANDLER)
    root.addHandler(handler)
    root.setLevel(numeric_level)
    _STDLIB_HANDLER = handler
