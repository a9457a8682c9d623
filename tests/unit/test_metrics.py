"""Metric names, values read from the governor at scrape time, hooks, and the HTTP endpoints."""

from __future__ import annotations

import aiohttp
import anyio
from prometheus_client.parser import text_string_to_metric_families

from worker.api.governor import Governor
from worker.job.run import JobResult
from worker.ops.metrics import Metrics, serve_metrics


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_governor_counters_are_exported_as_they_are_at_scrape_time() -> None:
    governor = Governor(10.0)
    metrics = Metrics()
    metrics.watch_governor(governor)
    before = samples(metrics.render().decode())
    assert before[("enroller_api_throttled_total", ())] == 0
    governor.throttled(0.5)
    governor.retried()
    governor.stats.wait_seconds += 1.5
    governor.stats.in_flight_now = 3
    after = samples(metrics.render().decode())
    assert after[("enroller_api_throttled_total", ())] == 1
    assert after[("enroller_api_retries_total", ())] == 1
    assert after[("enroller_rate_wait_seconds_total", ())] == 1.5
    assert after[("enroller_api_in_flight", ())] == 3


def test_hooks_count_requests_outcomes_jobs_and_queue_depth() -> None:
    metrics = Metrics()
    metrics.watch_queue(lambda: {"inbox": 4, "active": 1})
    route = "/spaces/{owner}/{space}/audios"
    metrics.on_attempt("POST", route, "201")
    metrics.on_attempt("POST", route, "429")
    metrics.on_attempt("POST", route, "timeout")
    metrics.job_started("j1", "a.json", object())
    metrics.enrollment_finished("enrolled")
    running = samples(metrics.render().decode())[("enroller_jobs_running", ())]
    metrics.job_ended(JobResult("j1", "a.json"))
    metrics.job_ended(JobResult("j2", "b.json", failed_manifest=True))
    got = samples(metrics.render().decode())
    for status in ("201", "429", "timeout"):
        key = (("method", "POST"), ("route", route), ("status", status))
        assert got[("enroller_api_requests_total", key)] == 1
    assert got[("enroller_enrollments_total", (("outcome", "enrolled"),))] == 1
    assert got[("enroller_enrollments_total", (("outcome", "conflict"),))] == 0  # pre-declared
    assert got[("enroller_jobs_total", (("result", "done"),))] == 1
    assert got[("enroller_jobs_total", (("result", "failed_manifest"),))] == 1
    assert running == 1 and got[("enroller_jobs_running", ())] == 0
    assert got[("enroller_queue_files", (("folder", "inbox"),))] == 4


def test_each_metrics_object_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.enrollment_finished("failed")
    key = ("enroller_enrollments_total", (("outcome", "failed"),))
    assert samples(a.render().decode())[key] == 1
    assert samples(b.render().decode())[key] == 0


async def test_metrics_and_healthz_are_served_over_http() -> None:
    metrics = Metrics()
    metrics.enrollment_finished("enrolled")
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve_metrics, metrics, "127.0.0.1", 0, lambda: {"status": "running"})
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("text/plain")
                text = await resp.text()
            async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                assert resp.status == 200 and (await resp.json())["status"] == "running"
        tg.cancel_scope.cancel()
    assert 'enroller_enrollments_total{outcome="enrolled"} 1.0' in text
