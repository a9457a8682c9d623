"""Undoing `worker.base.log.configure_logging` between tests: a process configures it once."""

from __future__ import annotations

import logging

import structlog

from worker.base import log


def reset_logging() -> None:
    """structlog's defaults again, no stdlib handler of the worker's, no quieted events."""
    structlog.reset_defaults()
    if log._STDLIB_HANDLER is not None:
        logging.getLogger().removeHandler(log._STDLIB_HANDLER)
        log._STDLIB_HANDLER = None
    log._QUIET.clear()
