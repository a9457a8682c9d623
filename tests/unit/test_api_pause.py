"""Issue 27 point 3: a wait the API asks for above ENROLLER_MAX_RETRY_AFTER is shown, once
a pause, in the log, the heartbeat (`enroller status`) and /metrics; `--once` requests stop."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from worker.api.errors import ApiPaused
from worker.api.pause import ServerPause
from worker.config.settings import Settings
from worker.ops.health import heartbeat_dir
from worker.ops.metrics import Metrics
from worker.ops.status import gather, render_text

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_a_long_wait_is_one_log_line_per_pause_and_told_to_listeners() -> None:
    clock = Clock()
    pause = ServerPause(300, now=clock)
    told: list[datetime] = []
    pause.listen(told.append)
    assert not pause.too_long(300) and pause.too_long(300.5)
    with capture_logs() as logs:
        for _ in range(5):  # five requests asked the same wait: one pause
            pause.declare(999999, route="/r")
        clock.now += timedelta(seconds=10)
        pause.declare(999999, route="/r")  # 10 s later, still the same pause
    assert [e["event"] for e in logs] == ["api.paused"]
    assert told == [T0 + timedelta(seconds=999999)]
    assert pause.active() == T0 + timedelta(seconds=1000009)  # moved later, silently
    clock.now = T0 + timedelta(seconds=1000010)
    assert pause.active() is None  # over: the next one is a new pause
    with capture_logs() as logs:
        pause.declare(999999, route="/r")
    assert len(logs) == 1 and len(told) == 2


def test_once_mode_raises_unsent_while_the_pause_lasts() -> None:
    pause = ServerPause(300, now=Clock())
    pause.check(method="GET", route="/r")  # no pause: nothing
    pause.declare(1000, route="/r")
    pause.check(method="GET", route="/r")  # a daemon waits instead (the governor's pause)
    pause.stops_requests = True
    with pytest.raises(ApiPaused, match=r"wait until 2026-01-01T00:16:40\+00:00"):
        pause.check(method="GET", route="/r")


def test_status_and_metrics_show_the_pause(tmp_path: Path) -> None:
    settings = Settings(queue_dir=tmp_path)
    beats = heartbeat_dir(tmp_path)
    beats.mkdir(parents=True)
    beat = {"worker_id": "w1", "state": "running", "api_paused_until": "2026-01-12T13:46:39+00:00"}
    (beats / "host-1.json").write_text(json.dumps(beat))
    text = render_text(gather(settings))
    assert "worker w1: the API asked to wait until 2026-01-12T13:46:39+00:00" in text
    pause = ServerPause(300, now=Clock())
    metrics = Metrics()
    metrics.watch_pause(pause)
    assert b"enroller_api_paused_until_seconds 0.0" in metrics.render()
    until = pause.declare(999999, route="/r")
    assert until.timestamp() == 1767225600 + 999999
    assert b"enroller_api_paused_until_seconds 1.768225599e+09" in metrics.render()
