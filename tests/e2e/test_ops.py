"""`enroller run` as a real process, seen from outside: healthcheck, /metrics, logs, progress.

One emulator world with a distinctive API key, so that "the key appears nowhere" is a grep over
everything the worker printed, served and wrote.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from emulator.config import default_world
from tests.emulator_harness import running_emulator
from tests.support import (
    QUEUE_FOLDERS,
    drop,
    free_port,
    job_manifest,
    make_queue,
    wait_for,
    worker_env,
)

API_KEY = "vpk-OPS-7f3a9c2e51d04b8aa6"  # in no other file: any hit is a leak


def world_with_key(path: Path) -> Path:
    world = default_world().model_dump(mode="json")
    for user in world["users"]:
        if user["handle"] == "demo":
            user["api_keys"] = [API_KEY]
    path.write_text(json.dumps(world))
    return path


def ops_queue(root: Path, identities: list[str]) -> Path:
    return make_queue(root, identities, step_s=0.1, folders=QUEUE_FOLDERS)


def ops_env(queue: Path, base_url: str, **extra: str) -> dict[str, str]:
    env = worker_env(
        queue,
        base_url,
        ENROLLER_API_KEY=API_KEY,
        ENROLLER_HEARTBEAT_INTERVAL="0.2",
        ENROLLER_HEALTH_MAX_AGE="5",
        **extra,
    )
    del env["ENROLLER_LOG_FORMAT"]  # unset: "auto" must pick JSON off a terminal
    return env


def healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "worker", "healthcheck"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=False)


def metric_values(text: str) -> dict[str, float]:
    """Sample name → value summed over labels (enough to see a counter move)."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


def every_output(queue: Path) -> list[Path]:
    return [p for p in queue.rglob("*") if p.is_file() and p.suffix != ".wav"]


async def scrape(session: aiohttp.ClientSession, port: int) -> str:
    async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
        assert resp.status == 200
        return await resp.text()


@pytest.mark.timeout(90)
async def test_daemon_health_metrics_and_logs_from_outside(tmp_path: Path) -> None:
    ids = [f"ops-{i:02d}" for i in range(16)]
    queue = ops_queue(tmp_path / "queue", ids)
    port = free_port()
    world = world_with_key(tmp_path / "w.json")
    # A few faults, so that retry and error lines (where a key would most likely leak) occur.
    async with running_emulator(latency_ms=25, fault_rate=0.08, seed=7, config=world) as emu:
        env = ops_env(
            queue, emu.base_url, ENROLLER_METRICS_PORT=str(port), ENROLLER_RATE_LIMIT="30"
        )
        assert healthcheck(env).returncode != 0, "healthy with no worker running"

        argv = [sys.executable, "-m", "worker", "run"]
        proc = await anyio.open_process(argv, env=env, stderr=subprocess.PIPE)
        stderr = bytearray()

        async def collect() -> None:
            assert proc.stderr is not None
            async for chunk in proc.stderr:
                stderr.extend(chunk)

        scrapes: list[str] = []
        async with anyio.create_task_group() as tg, aiohttp.ClientSession() as session:
            tg.start_soon(collect)
            await wait_for(lambda: b"metrics_listening" in stderr, 20)
            await wait_for(lambda: bool(list((queue / ".health").glob("*.json"))), 10)
            drop(queue, "batch.json", job_manifest(ids))
            # First scrape once the job's requests are under way, second once an enrollment
            # has finished: more requests must have been counted in between.
            await wait_for(lambda: b'"job_started"' in stderr, 30)
            posted = lambda: any(r.method == "POST" for r in emu.requests)  # noqa: E731
            await wait_for(posted, 30, "the emulator receiving the job's first request")
            scrapes.append(await scrape(session, port))
            await wait_for(lambda: b'"enrollment_finished"' in stderr, 30)
            scrapes.append(await scrape(session, port))
            during = healthcheck(env)
            async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                healthz = await resp.json()
            await wait_for(lambda: bool(list((queue / "reports").glob("*.report.json"))), 40)

            async def counted_done() -> str | None:  # the job's end is counted after its report
                text = await scrape(session, port)
                return text if 'enroller_jobs_total{result="done"} 1.0' in text else None

            scrapes.append(await wait_for(counted_done, 10, "the job's end counted"))
            proc.send_signal(signal.SIGTERM)
            with anyio.fail_after(20):
                code = await proc.wait()
        log_text = stderr.decode(errors="replace")
        assert code == 0, log_text[-2000:]

        # Health: zero while it ran, non-zero once it stopped (and its heartbeat is gone).
        assert during.returncode == 0, during.stdout + during.stderr
        assert healthz["status"] == "running"
        after = healthcheck(env)
        assert after.returncode != 0 and "heartbeat" in after.stdout

    # Metrics moved between two scrapes during the run, and ended at the right totals.
    first, second, final = (metric_values(s) for s in scrapes)
    assert second["enroller_api_requests_total"] > first["enroller_api_requests_total"] > 0
    assert second["enroller_rate_wait_seconds_total"] > first["enroller_rate_wait_seconds_total"]
    assert second["enroller_enrollments_total"] > 0
    assert final["enroller_enrollments_total"] > first["enroller_enrollments_total"]
    assert final["enroller_enrollments_total"] == len(ids)
    assert 'enroller_enrollments_total{outcome="enrolled"} 16.0' in scrapes[-1]
    assert 'enroller_jobs_total{result="done"} 1.0' in scrapes[-1]
    # Routes are templates (files go inline with the audio create, so compute is the example).
    assert (
        'route="/spaces/{owner}/{space}/voiceprints/{identity}/{voiceprint}:compute"'
        in (scrapes[-1])
    )
    assert 'enroller_queue_files{folder="reports"} 1.0' in scrapes[-1]

    # Logs: JSON lines off a terminal; every job line names the job, every enrollment line the
    # identity too; progress lines come every few seconds with done/total.
    lines = [json.loads(line) for line in log_text.splitlines() if line.strip()]
    job_events = {"job_started", "enrollment_finished", "job_finished", "job_progress"}
    assert job_events <= {line["event"] for line in lines}
    for line in lines:
        if line["event"] in job_events or "identity" in line:
            assert str(line.get("job_id", "")).startswith("batch-"), line
        if line["event"] == "enrollment_finished":
            assert line["identity"] in ids, line
    # Lines the API client logs inside an enrollment carry the job and the identity too.
    inside = [line for line in lines if line["event"] == "api.retry" and "identity" in line]
    assert inside and all(line["job_id"] and line["identity"] in ids for line in inside)
    progress = [line for line in lines if line["event"] == "job_progress"]
    assert all(line["total"] == len(ids) for line in progress)

    # The key is nowhere: not in logs, metrics, reports, journals, heartbeats or anything else.
    leaks = [p for p in every_output(queue) if API_KEY.encode() in p.read_bytes()]
    assert not leaks, leaks
    assert API_KEY not in log_text and not any(API_KEY in s for s in scrapes)
    assert list((queue / "reports").glob("*.report.json"))


@pytest.mark.timeout(60)
async def test_once_on_a_terminal_shows_a_progress_bar(tmp_path: Path) -> None:
    ids = [f"tty-{i:02d}" for i in range(4)]
    queue = ops_queue(tmp_path / "queue", ids)
    drop(queue, "tty.json", job_manifest(ids))
    async with running_emulator(config=world_with_key(tmp_path / "w.json")) as emu:
        env = ops_env(queue, emu.base_url, COLUMNS="120", TERM="xterm")
        leader, follower = pty.openpty()
        try:
            proc = await anyio.open_process(
                [sys.executable, "-m", "worker", "run", "--once"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=follower,
            )
            os.close(follower)
            output = bytearray()

            def read_all() -> None:
                while True:
                    try:
                        chunk = os.read(leader, 65536)
                    except OSError:  # EIO: the child closed the terminal
                        return
                    if not chunk:
                        return
                    output.extend(chunk)

            async with anyio.create_task_group() as tg:
                tg.start_soon(anyio.to_thread.run_sync, read_all)
                with anyio.fail_after(40):
                    code = await proc.wait()
        finally:
            os.close(leader)
    text = output.decode(errors="replace")
    assert code == 0, text[-2000:]
    assert "4/4" in text and "/s" in text, text[-2000:]
    assert "job_progress" not in text  # the bar replaces the periodic progress lines
    assert API_KEY not in text
