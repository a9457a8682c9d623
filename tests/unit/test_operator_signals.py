"""Issue 30 points 5 and 6, without a worker process: an outage told once at each end, what the
surfaces say while it lasts, and a job's progress with its steps, rate and ETA."""

from __future__ import annotations

import io
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from rich.console import Console
from structlog.testing import capture_logs

from tests.fakeclock import FakeClock
from tests.support import free_port
from worker.api import errors
from worker.api.auth import ApiKeyAuth
from worker.api.backoff import RetryPolicy
from worker.api.client import ApiClient
from worker.api.outage import OutageTracker
from worker.cli import main
from worker.config.settings import Settings
from worker.job.progress import JobProgress
from worker.ops.health import heartbeat_document, heartbeat_path
from worker.ops.operations import api_state, operations
from worker.ops.overview import api_view, workers
from worker.ops.progress import ProgressDisplay


def test_a_long_outage_is_one_warning_when_it_starts_and_one_when_it_ends() -> None:
    clock = FakeClock(1000.0)
    tracker = OutageTracker(clock=clock)
    with capture_logs() as logs:
        tracker.answered()
        tracker.failed("503")  # a blip: the retry line tells it; no outage yet
        tracker.answered()
        for _ in range(244):  # 75 s of refused connections, an attempt every ~0.3 s
            tracker.failed("not_sent")
            clock.advance(75 / 244)
        assert tracker.active
        assert tracker.snapshot().state == "unreachable"
        tracker.answered()
    assert not tracker.active and tracker.snapshot().state == "reachable"
    told = [(e["event"], e["log_level"]) for e in logs]
    assert told == [("api_unreachable", "warning"), ("api_reachable_again", "warning")]
    assert logs[1]["outage_s"] == 75.0 and logs[1]["failed_attempts"] == 244


def test_progress_counts_steps_rate_and_eta() -> None:
    progress = JobProgress(total=40)
    progress.written.update({"audio_created": 23, "audio_intent": 23, "computed": 0})
    doc = progress.as_json()
    assert (doc["done"], doc["total"], doc["steps"]) == (0, 40, {"audios_sent": 23, "computes": 0})
    assert doc["eta_s"] is None  # no enrollment finished yet: no rate to tell an ETA from
    progress.started -= 10  # ten seconds in
    progress.counts["enrolled"] += 5
    doc = progress.as_json()
    assert doc["per_second"] == pytest.approx(0.5, rel=0.01)
    assert doc["eta_s"] == pytest.approx(70, rel=0.01)


def test_healthcheck_and_status_say_degraded_while_the_api_is_unreachable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = tmp_path / "queue"
    for folder in ("inbox", "active", "done", "failed", "reports"):
        (queue / folder).mkdir(parents=True)
    settings = Settings(queue_dir=queue)
    api = {
        "state": "unreachable",
        "since": time.time() - 42,
        "failed_attempts": 9,
        "last_error": "not_sent",
    }
    beat = heartbeat_document(settings, "running", 1, time.time(), api)
    path = heartbeat_path(queue, socket.gethostname(), os.getpid())
    path.parent.mkdir()
    path.write_text(json.dumps(beat))

    assert main(["healthcheck", "--queue-dir", str(queue)]) == 0  # alive: a restart won't help
    out = capsys.readouterr().out
    assert out.startswith("degraded: the API has been unreachable for 4")
    assert "s (last error: not_sent); the worker retries with backoff" in out

    views = workers(queue, max_age=30)
    assert views[0].degraded and api_view(views).state == "unreachable"
    assert main(["status", "--queue-dir", str(queue)]) == 0
    status = capsys.readouterr().out
    assert "jobs): degraded, heartbeat" in status
    assert "api: unreachable: the API has been unreachable for 4" in status


async def test_the_request_loop_writes_attempts_of_an_outage_at_debug_level() -> None:
    """Against a port nobody listens on: two retry warnings, then the outage's one line; the
    other attempts (and the give-up) are detail."""
    client = ApiClient(
        f"http://127.0.0.1:{free_port()}/v1",
        ApiKeyAuth(SecretStr("k")),
        retry=RetryPolicy(max_retries=9, max_time=60),
        rand=lambda: 0.0,
    )
    async with client:
        with capture_logs() as logs, pytest.raises(errors.ApiError):
            await client.get_user()
    warnings = [(e["event"], e.get("attempt")) for e in logs if e["log_level"] == "warning"]
    assert warnings == [("api.retry", 1), ("api.retry", 2), ("api_unreachable", None)]
    assert sum(e["event"] == "api.retry" for e in logs) == 9  # all still there, at debug
    assert client.outage.active


async def test_healthz_says_degraded_while_the_api_cannot_be_reached(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(queue_dir=tmp_path / "queue", metrics_port=port)
    client = ApiClient(f"http://127.0.0.1:{free_port()}/v1", ApiKeyAuth(SecretStr("k")))

    async def healthz(session: aiohttp.ClientSession) -> dict[str, Any]:
        async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
            return dict(await resp.json())

    async with (
        client,
        operations(settings, client, lambda: False, progress_bar=False),
        aiohttp.ClientSession() as session,
    ):
        assert (await healthz(session))["status"] == "running"
        for _ in range(3):  # what the request loop records when nobody answers
            client.outage.failed("not_sent")
        doc = await healthz(session)
        assert doc["status"] == "degraded"
        assert doc["api"]["state"] == "unreachable" and doc["api"]["last_error"] == "not_sent"
        client.outage.answered()
        assert (await healthz(session))["status"] == "running"


def test_the_progress_bar_shows_steps_before_any_enrollment_finishes() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160, color_system=None)
    display = ProgressDisplay(console, refresh_per_second=50)
    state = JobProgress(total=40)
    display.start()
    try:
        display.job_started("night-0123456789", "night.csv", state)
        state.written["audio_created"] += 23  # the journal's count of uploads done
        display.progress.refresh()
    finally:
        display.stop()
    assert "0/40" in out.getvalue() and "23 audios sent, 0 computes" in out.getvalue()


async def test_status_says_when_the_api_is_pausing_us(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = ApiClient(f"http://127.0.0.1:{free_port()}/v1", ApiKeyAuth(SecretStr("k")))
    async with client:
        client.outage.answered()
        client.governor.throttled(30.0)  # a 429 with Retry-After: 30
        client.governor.mark_credits_exhausted(
            errors.CreditsExhausted("Not enough credits", sent=True)
        )
        api = api_state(client)
    assert api["state"] == "reachable" and 29 <= api["throttled_for_s"] <= 30
    assert api["credits_paused"] is True
    queue = tmp_path / "queue"
    beat = heartbeat_document(Settings(queue_dir=queue), "running", 1, time.time(), api)
    path = heartbeat_path(queue, socket.gethostname(), os.getpid())
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(beat))
    assert main(["status", "--queue-dir", str(queue)]) == 0
    [line] = [x for x in capsys.readouterr().out.splitlines() if x.startswith("api: ")]
    assert line.startswith("api: reachable; pausing us: throttled (429 Retry-After) for ")
    assert line.endswith(" s more, computes paused: out of credits (ENROLLER_CREDITS_RECHECK)")
