"""The operational surfaces around one `enroller run`: heartbeat, /metrics, the progress bar.

Owns: running them for the lifetime of the run and handing back the one `JobObserver` the
service is built with, and nothing else. It never imports the service (the service imports
it): it sees only the API client, a `stopping()` question and the settings. The service works
the same with or without them; they only observe (the client's `on_attempt` hook, the
observer the service is given), so a failure here can never change what is enrolled.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from worker.base.log import use_json_logs
from worker.config.settings import Settings
from worker.ops.health import heartbeat_forever
from worker.ops.metrics import Metrics, serve_metrics
from worker.ops.status import gather

if TYPE_CHECKING:
    from worker.api.client import ApiClient
    from worker.api.pause import ServerPause
    from worker.job.run import JobObserver, JobResult

log = structlog.get_logger(__name__)


class FanOut:
    """Several `JobObserver`s as one. An observer that raises is logged, never propagated:
    a broken display or metric must not fail the enrollment whose outcome it was told."""

    def __init__(self, observers: Sequence[JobObserver]) -> None:
        self._observers = list(observers)

    def _each(self, call: Callable[[JobObserver], None], hook: str) -> None:
        for obs in self._observers:
            try:
                call(obs)
            except Exception as exc:
                log.warning("observer_failed", observer=type(obs).__name__, hook=hook, error=exc)

    def job_started(self, job_id: str, name: str, progress: Any) -> None:
        self._each(lambda obs: obs.job_started(job_id, name, progress), "job_started")

    def enrollment_finished(self, outcome: str) -> None:
        self._each(lambda obs: obs.enrollment_finished(outcome), "enrollment_finished")

    def job_ended(self, result: JobResult) -> None:
        self._each(lambda obs: obs.job_ended(result), "job_ended")


def api_state(client: ApiClient) -> dict[str, Any]:
    """The API as this worker finds it, for the heartbeat and /healthz: reachable or not
    (`worker.api.outage`), and whether it is pausing us: a 429's Retry-After still running,
    or computes paused for credits."""
    governor = client.governor
    doc: dict[str, Any] = client.outage.snapshot().model_dump()
    doc["throttled_for_s"] = round(max(0.0, governor.bucket.paused_until - time.monotonic()), 1)
    doc["credits_paused"] = governor.credits_exhausted
    return doc


def wants_progress_bar(settings: Settings) -> bool:
    """A live bar only for a person at a terminal who did not ask for JSON logs."""
    return sys.stderr.isatty() and not use_json_logs(settings.log_format)


def api_pause_fields(pause: ServerPause) -> dict[str, Any]:
    """A wait the API asked for above ENROLLER_MAX_RETRY_AFTER, while it lasts (heartbeat,
    /healthz)."""
    until = pause.active()
    return {"api_paused_until": until.isoformat(timespec="seconds")} if until else {}


@asynccontextmanager
async def operations(
    settings: Settings,
    client: ApiClient,
    stopping: Callable[[], bool],
    *,
    progress_bar: bool | None = None,
) -> AsyncIterator[FanOut]:
    """Run heartbeat, metrics server and progress display while the block runs.

    Yields the observer to build the service with (metrics, and the bar when one shows).
    """
    metrics = Metrics()
    metrics.watch_governor(client.governor)
    metrics.watch_pause(client.pause)
    metrics.watch_queue(lambda: gather(settings)["counts"])
    client.on_attempt = metrics.on_attempt
    observers: list[Any] = [metrics]
    show_bar = wants_progress_bar(settings) if progress_bar is None else progress_bar
    display = None
    if show_bar:
        from worker.ops.progress import ProgressDisplay  # rich loads only when a bar shows

        display = ProgressDisplay()
        observers.append(display)
    observer = FanOut(observers)

    def state() -> tuple[str, int]:
        return ("stopping" if stopping() else "running", metrics.running)

    paused = functools.partial(api_pause_fields, client.pause)

    def health() -> dict[str, Any]:
        name, jobs = state()
        api = api_state(client)
        doc: dict[str, Any] = {
            "status": "degraded" if api["state"] == "unreachable" and name == "running" else name,
            "worker_id": settings.worker_id,
            "jobs_running": jobs,
            "api": api,
            **paused(),
        }
        shared = client.governor.shared
        if shared is not None:  # fleet mode: say when this worker paces alone (Redis gone)
            doc["fleet"] = {"size": shared.fleet_size, "degraded": shared.degraded}
        return doc

    async with anyio.create_task_group() as tg:
        tg.start_soon(heartbeat_forever, settings, state, lambda: api_state(client), paused)
        if settings.metrics_port:
            await tg.start(
                serve_metrics, metrics, settings.metrics_host, settings.metrics_port, health
            )
        if display is not None:
            display.start()
        try:
            yield observer
        finally:
            if display is not None:
                display.stop()
            tg.cancel_scope.cancel()
