"""docker-compose.yml acted out without Docker: its services' own commands, environment and
secret, run as local processes, must turn the examples dropped into the inbox into reports.

What this cannot prove (image build, networking, bind-mount permissions, tini) needs a Docker
engine: `make test-container` (tests/container/) proves it there. This one runs in every `make
test`, in seconds, and proves the wiring: the emulator
command serves, the `samples` command writes the audio the examples need, the worker started
from the compose environment and the example secret enrolls them, and is healthy meanwhile.
Container paths are mapped to temporary ones: /jobs, /run/secrets/api_key, emulator:8765.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from tests.support import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(rb"emulator listening on (http://\S+/v1)")


def local_env(service: dict[str, Any], mapping: dict[str, str], **extra: str) -> dict[str, str]:
    """The service's environment with container paths and hosts mapped to local ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENROLLER_", "EMULATOR_"))}
    for name, value in service.get("environment", {}).items():
        value = str(value)
        for container, local in mapping.items():
            value = value.replace(container, local)
        env[name] = value
    env.update(extra)
    return env


def local_argv(command: list[str]) -> list[str]:
    if command[0] == "enroller":
        return [sys.executable, "-m", "worker", *command[1:]]
    if command[0] == "python":
        return [sys.executable, *command[1:]]
    raise AssertionError(f"unexpected program {command[0]}")


@pytest.mark.scenario
@pytest.mark.timeout(90)
async def test_compose_services_turn_the_examples_into_reports(tmp_path: Path) -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    jobs = tmp_path / "jobs"
    jobs.mkdir()

    # samples: `docker compose run --rm samples`
    samples = services["samples"]["command"]
    argv = local_argv([part.replace("/jobs", str(jobs)) for part in samples])
    done = await anyio.run_process(argv, check=False)
    assert done.returncode == 0, done.stderr.decode()

    # emulator: its command, on a free port instead of the published 8765
    emu_cmd = [p if p != "8765" else str(free_port()) for p in services["emulator"]["command"]]
    emu_env = local_env(services["emulator"], {})
    emulator = await anyio.open_process(local_argv(emu_cmd), env=emu_env)
    try:
        assert emulator.stdout is not None
        seen = b""
        with anyio.fail_after(20):
            while not (match := READY.search(seen)):
                seen += await emulator.stdout.receive()
        # It listens on every interface, as in the container; we talk to it over loopback.
        base_url = match.group(1).decode().replace("0.0.0.0", "127.0.0.1")  # noqa: S104

        examples = sorted((ROOT / "jobs" / "examples").glob("*.json"))
        examples += sorted((ROOT / "jobs" / "examples").glob("*.csv"))

        # worker: the compose environment, the compose secret, the compose command
        worker = services["worker"]
        secret = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["secrets"]
        secret_file = ROOT / secret[worker["secrets"][0]["source"]]["file"]
        env = local_env(
            worker,
            {
                "/run/secrets/api_key": str(secret_file),
                "/jobs": str(jobs),
                "http://emulator:8765/v1": base_url,
            },
            ENROLLER_METRICS_PORT=str(free_port()),
            ENROLLER_METRICS_HOST="127.0.0.1",
            ENROLLER_MIN_AGE="0",
            ENROLLER_HEARTBEAT_INTERVAL="0.2",
        )
        # the examples, submitted the way the README says (`compose exec worker enroller submit`)
        submit = ["enroller", "submit", *(str(e) for e in examples)]
        submitted = await anyio.run_process(local_argv(submit), env=env, check=False)
        assert submitted.returncode == 0, submitted.stdout.decode() + submitted.stderr.decode()
        assert sorted(p.name for p in (jobs / "inbox").iterdir()) == sorted(
            e.name for e in examples
        )

        proc = await anyio.open_process(
            local_argv(worker["command"]), env=env, stderr=subprocess.PIPE
        )
        stderr = bytearray()

        async def collect() -> None:
            assert proc.stderr is not None
            async for chunk in proc.stderr:
                stderr.extend(chunk)

        def reports() -> list[Path]:
            return sorted((jobs / "reports").glob("*.report.json"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(collect)
            await wait_for(
                lambda: len(reports()) >= len(examples) or proc.returncode is not None,
                60,
                "a report for each example",
            )
            health = await anyio.run_process(
                [sys.executable, "-m", "worker", "healthcheck"], env=env, check=False
            )
            proc.send_signal(signal.SIGTERM)
            with anyio.fail_after(float(worker["environment"]["ENROLLER_SHUTDOWN_GRACE"]) + 10):
                code = await proc.wait()
        log_text = stderr.decode(errors="replace")
        assert code == 0, log_text[-3000:]
        assert health.returncode == 0, health.stdout.decode()
    finally:
        emulator.send_signal(signal.SIGTERM)
        with anyio.fail_after(10):
            await emulator.wait()

    assert len(reports()) == len(examples), log_text[-3000:]
    for report in reports():
        counts = json.loads(report.read_text())["counts"]
        assert counts.get("enrolled", 0) > 0 and not counts.get("failed"), (report.name, counts)
    assert "demo-key" not in log_text
