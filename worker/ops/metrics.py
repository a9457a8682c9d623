"""Prometheus metrics of one worker process, and the small HTTP server for /metrics and /healthz.

Owns: metric names, the per-process `CollectorRegistry` (never the global default, so that two
workers in one test process do not share counters), and the server. It reads counters others
already keep (`GovernorStats`, the queue folders) through custom collectors at scrape time, and
is told about the rest through two tiny hooks: `ApiClient.on_attempt` (one call per request
attempt, with the route *template*, never the URL) and the `JobObserver` protocol of
`worker.job.run`. It never changes what the worker does, and no label ever holds a secret, a path or
an identity.

Served by aiohttp inside the worker's own event loop rather than by prometheus_client's
threaded server: aiohttp is already a dependency, shutdown is part of the worker's, and an
answered /healthz then proves the loop itself is alive, not only a side thread. Rendering (which
lists queue folders) runs in a worker thread so a slow disk never stalls the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from worker.journal.records import Outcome

if TYPE_CHECKING:
    from worker.api.governor import Governor
    from worker.api.pause import ServerPause
    from worker.job.run import JobResult

log = structlog.get_logger(__name__)

JOB_RESULTS = ("done", "failed_manifest", "interrupted", "fatal")


def job_result_label(result: JobResult) -> str:
    """How a job ended, as one low-cardinality label value."""
    if result.failed_manifest:
        return "failed_manifest"
    if result.fatal:
        return "fatal"
    if result.interrupted:
        return "interrupted"
    return "done"


class GovernorCollector:
    """Exports the governor's own counters at scrape time: nothing is counted twice."""

    def __init__(self, governor: Governor) -> None:
        self._governor = governor

    def collect(self) -> Iterable[Metric]:
        stats = self._governor.stats
        counters = (
            ("enroller_api_attempts", "Attempts let through the rate budget.", "requests"),
            ("enroller_api_throttled", "429 answers with Retry-After (pauses).", "throttled"),
            ("enroller_api_credits_refused", "Computes refused: no credits.", "credits_refused"),
            ("enroller_api_retries", "Resends after a transient failure.", "retries"),
            ("enroller_api_sign_ins", "Credential sign-ins after a 401.", "renewals"),
        )
        for name, doc, attr in counters:
            yield CounterMetricFamily(name, doc, value=getattr(stats, attr))
        yield CounterMetricFamily(
            "enroller_rate_wait_seconds",
            "Seconds requests spent waiting for a send slot or a 429 pause.",
            value=stats.wait_seconds,
        )
        yield GaugeMetricFamily(
            "enroller_api_in_flight", "Requests in flight now.", value=stats.in_flight_now
        )
        yield GaugeMetricFamily(
            "enroller_api_uploads_in_flight", "Uploads in flight now.", value=stats.uploads_now
        )
        yield GaugeMetricFamily(
            "enroller_api_rate", "Current pacing, requests/s (lower after 429s).", value=stats.rate
        )
        shared = self._governor.shared
        yield GaugeMetricFamily(
            "enroller_fleet_size",
            "Workers in this worker's fleet (1 without ENROLLER_REDIS_URL).",
            value=shared.fleet_size if shared is not None else 1,
        )
        yield GaugeMetricFamily(
            "enroller_fleet_degraded",
            "1 while Redis is unreachable and this worker paces alone at rate / fleet size.",
            value=int(shared.degraded) if shared is not None else 0,
        )


class PauseCollector:
    """The end of a wait the API asked for above ENROLLER_MAX_RETRY_AFTER, as a Unix time."""

    def __init__(self, pause: ServerPause) -> None:
        self._pause = pause

    def collect(self) -> Iterable[Metric]:
        until = self._pause.active()
        yield GaugeMetricFamily(
            "enroller_api_paused_until_seconds",
            "Unix time until which the API asked to wait (above ENROLLER_MAX_RETRY_AFTER); "
            "0 when no such pause is in progress.",
            value=until.timestamp() if until is not None else 0.0,
        )


class QueueCollector:
    """Files per queue folder (the queue depth), counted as `enroller status` counts them."""

    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "enroller_queue_files", "Files per queue folder (inbox = waiting).", labels=["folder"]
        )
        for folder, n in self._counts().items():
            family.add_metric([folder], n)
        yield family


class Metrics:
    """The metrics of one worker process; also its `JobObserver` and its request hook."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.api_requests = Counter(
            "enroller_api_requests",
            "API request attempts by method, route template and status (or failure kind).",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.enrollments = Counter(
            "enroller_enrollments",
            "Enrollments finished, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.jobs = Counter(
            "enroller_jobs", "Jobs ended, by result.", ["result"], registry=self.registry
        )
        self.jobs_running = Gauge(
            "enroller_jobs_running", "Jobs running in this process.", registry=self.registry
        )
        for outcome in Outcome:
            self.enrollments.labels(outcome.value)  # every outcome visible from the start, at 0
        for result in JOB_RESULTS:
            self.jobs.labels(result)
        self._started: set[str] = set()

    @property
    def running(self) -> int:
        """Jobs started and not yet ended in this process."""
        return len(self._started)

    def watch_governor(self, governor: Governor) -> None:
        self.registry.register(GovernorCollector(governor))

    def watch_pause(self, pause: ServerPause) -> None:
        self.registry.register(PauseCollector(pause))

    def watch_queue(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self.registry.register(QueueCollector(counts))

    def render(self) -> bytes:
        """The text exposition format of everything in this registry."""
        return generate_latest(self.registry)

    # --- hooks ------------------------------------------------------------------------------

    def on_attempt(self, method: str, route: str, status: str) -> None:
        """`ApiClient.on_attempt`: one request attempt ended with `status`."""
        self.api_requests.labels(method, route, status).inc()

    def job_started(self, job_id: str, name: str, progress: Any) -> None:
        if job_id not in self._started:
            self._started.add(job_id)
            self.jobs_running.inc()

    def enrollment_finished(self, outcome: str) -> None:
        self.enrollments.labels(outcome).inc()

    def job_ended(self, result: JobResult) -> None:
        self.jobs.labels(job_result_label(result)).inc()
        if result.job_id in self._started:
            self._started.discard(result.job_id)
            self.jobs_running.dec()


async def serve_metrics(
    metrics: Metrics,
    host: str,
    port: int,
    health: Callable[[], dict[str, Any]],
    *,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `/metrics` and `/healthz` until cancelled; reports the bound port when started."""

    async def get_metrics(request: web.Request) -> web.Response:
        body = await anyio.to_thread.run_sync(metrics.render)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def get_healthz(request: web.Request) -> web.Response:
        return web.json_response(health())

    app = web.Application()
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/healthz", get_healthz)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            # The worker's job is enrolling; a taken port costs the metrics, not the run.
            log.error("metrics_not_served", host=host, port=port, error=exc.strerror)
            task_status.started(0)
            return
        bound = port
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            bound = server.sockets[0].getsockname()[1]
        log.info("metrics_listening", host=host, port=bound)
        task_status.started(bound)
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            await runner.cleanup()
