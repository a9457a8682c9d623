"""Logging set-up, heartbeat judgement and the progress display, as plain calls."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from rich.console import Console

from tests.logreset import reset_logging
from worker.base.log import configure_logging
from worker.config.settings import Settings
from worker.job.progress import JobProgress
from worker.job.run import JobResult
from worker.ops.health import check_health, heartbeat_path, judge_heartbeats, sweep_dead
from worker.ops.operations import FanOut
from worker.ops.progress import ProgressDisplay


@pytest.fixture
def logging_reset() -> Iterator[None]:
    yield
    reset_logging()


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_lines_carry_bound_context_and_drop_lower_levels(
    capsys: pytest.CaptureFixture[str], logging_reset: None
) -> None:
    configure_logging("info", "json", ["s3cr3t-key"])
    log = structlog.get_logger("t")
    with structlog.contextvars.bound_contextvars(job_id="job-1", identity="alice"):
        log.info("step", detail="sent s3cr3t-key")
        log.debug("noise")
    lines = json_lines(capsys.readouterr().err)
    assert [line["event"] for line in lines] == ["step"]
    assert lines[0]["job_id"] == "job-1" and lines[0]["identity"] == "alice"
    assert lines[0]["level"] == "info" and "timestamp" in lines[0]
    assert "s3cr3t-key" not in json.dumps(lines)


def test_stdlib_loggers_go_through_the_same_renderer_redaction_and_level(
    capsys: pytest.CaptureFixture[str], logging_reset: None
) -> None:
    configure_logging("warning", "json", ["s3cr3t-key"])
    aio = logging.getLogger("aiohttp.client")
    with structlog.contextvars.bound_contextvars(job_id="job-2"):
        aio.warning("header Authorization: Bearer %s rejected", "s3cr3t-key")
        aio.info("below the configured level")
    configure_logging("warning", "json")  # configuring twice must not double every line
    aio.error("once")
    lines = json_lines(capsys.readouterr().err)
    assert [line["event"] for line in lines][1:] == ["once"]
    first = lines[0]
    assert first["logger"] == "aiohttp.client" and first["job_id"] == "job-2"
    assert first["level"] == "warning"
    assert "s3cr3t-key" not in json.dumps(lines)


def test_console_format_is_not_json(
    capsys: pytest.CaptureFixture[str], logging_reset: None
) -> None:
    configure_logging("info", "console")
    structlog.get_logger().info("hello", job_id="j")
    err = capsys.readouterr().err
    assert "hello" in err and "job_id" in err and not err.lstrip().startswith("{")


# --- health -------------------------------------------------------------------------------------


def beat(at: float, pid: int = 42, host: str = "h") -> dict[str, object]:
    return {"host": host, "pid": pid, "at": at, "worker_id": f"{host}:{pid}"}


@pytest.mark.parametrize(
    ("beats", "alive", "healthy", "why"),
    [
        ([], True, False, "no worker heartbeat"),
        ([beat(99.0, host="other")], True, False, "no worker heartbeat"),
        ([beat(99.0)], False, False, "no longer running"),
        ([beat(50.0)], True, False, "50 s old"),
        ([beat(50.0, pid=1), beat(99.0, pid=2)], True, True, ""),
    ],
)
def test_judge_heartbeats(
    beats: list[dict[str, object]], alive: bool, healthy: bool, why: str
) -> None:
    chosen, problems = judge_heartbeats(
        beats, now=100.0, max_age=30.0, host="h", pid_alive=lambda pid: alive
    )
    assert (not problems) is healthy
    if why:
        assert why in problems[0]
    else:
        assert chosen is not None and chosen["pid"] == 2


def test_check_health_reads_this_process_heartbeat_and_probes_folders(tmp_path: Path) -> None:
    settings = Settings(queue_dir=tmp_path)
    for folder in ("inbox", "active", "done", "failed", "reports"):
        (tmp_path / folder).mkdir()
    assert not check_health(settings).ok
    path = heartbeat_path(tmp_path)
    path.parent.mkdir()
    doc = {"host": socket.gethostname(), "pid": os.getpid(), "at": 1000.0, "worker_id": "w"}
    path.write_text(json.dumps(doc))
    assert check_health(settings, now=1001.0).ok
    assert not check_health(settings, now=1100.0).ok  # older than health_max_age
    (tmp_path / "reports").rmdir()
    report = check_health(settings, now=1001.0)
    assert not report.ok and "reports" in report.problems[0]
    assert not list(tmp_path.rglob("*.tmp"))  # the writability probe leaves nothing behind


def test_a_starting_worker_sweeps_heartbeats_of_dead_processes_of_this_host(
    tmp_path: Path,
) -> None:
    host = socket.gethostname()
    for name, doc in {
        "dead.json": {"host": host, "pid": 111, "at": 1.0},
        "alive.json": {"host": host, "pid": 222, "at": 1.0},
        "elsewhere.json": {"host": "other-host", "pid": 111, "at": 1.0},
    }.items():
        (tmp_path / name).write_text(json.dumps(doc))
    removed = sweep_dead(tmp_path, pid_alive=lambda pid: pid == 222)
    assert [p.name for p in removed] == ["dead.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alive.json", "elsewhere.json"]


# --- progress display ---------------------------------------------------------------------------


def test_progress_bar_renders_done_total_rate_and_eta_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    display = ProgressDisplay(console, refresh_per_second=50)
    state = JobProgress(total=10)
    display.start()
    try:
        display.job_started("nightly-0123456789", "nightly.json", state)
        for _ in range(3):
            state.counts["enrolled"] += 1
            display.enrollment_finished("enrolled")
        display.progress.refresh()
        middle = out.getvalue()
        state.counts["enrolled"] += 7
        display.job_ended(JobResult("nightly-0123456789", "nightly.json", counts={"enrolled": 10}))
    finally:
        display.stop()
    assert "nightly-0123456789" in middle and "3/10" in middle and "/s" in middle
    assert "eta" in middle
    assert "10/10" in out.getvalue() and "enrolled=10" in out.getvalue()


def test_progress_display_ignores_jobs_it_never_saw_start() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    display = ProgressDisplay(console, refresh_per_second=50)
    display.start()
    try:
        display.job_ended(JobResult("rejected-1", "bad.json", failed_manifest=True))  # no error
        display.progress.refresh()
    finally:
        display.stop()
    assert display.progress.tasks == []  # no bar was made for it
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # cursor moves aside
    assert shown.strip() == "", repr(shown)  # and nothing at all was drawn


def test_a_failing_observer_never_reaches_the_job_and_the_others_still_hear() -> None:
    class Broken:
        def job_started(self, job_id: str, name: str, progress: object) -> None:
            raise RuntimeError("display broke")

        def enrollment_finished(self, outcome: str) -> None:
            raise RuntimeError("display broke")

        def job_ended(self, result: JobResult) -> None:
            raise RuntimeError("display broke")

    heard: list[str] = []

    class Listener(Broken):
        def enrollment_finished(self, outcome: str) -> None:
            heard.append(outcome)

    fan = FanOut([Broken(), Listener()])
    with structlog.testing.capture_logs() as logs:
        fan.job_started("j", "a.json", JobProgress(total=1))
        fan.enrollment_finished("enrolled")
        fan.job_ended(JobResult("j", "a.json"))
    assert heard == ["enrolled"]
    assert [e["hook"] for e in logs if e["event"] == "observer_failed"] == [
        "job_started",
        "job_started",
        "enrollment_finished",
        "job_ended",
        "job_ended",
    ]
