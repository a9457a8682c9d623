"""Pickup latency of the daemon: a manifest's rename into inbox/ to its first API request.

    .venv/bin/python benchmarks/pickup.py [--trials 5]

`python -m worker run` (the daemon) watches a fresh queue; the emulator runs in its own process
at latency 0. Each trial renames a one-enrollment manifest into inbox/ (written first under a
dot-name, the Maildir contract) and reads the emulator's `first_at` — the wall-clock time of
the first API request since the stats were reset — so the polling of the stats endpoint adds no
error. Between trials the job is left to finish and the stats are reset; each drop comes at a
random offset so that polling's phase is averaged over.

Four modes: file events and polling (ENROLLER_QUEUE_POLLING=1, default poll interval), each
with ENROLLER_MIN_AGE=0 and with the default min_age. A file renamed in just now has a fresh
mtime, so the stability rule would hold it until it is min_age old. With file events the worker
sees the rename (the dot-name deleted, the manifest added in one batch) and takes the file at
once, so min_age should barely matter there; polling cannot see a rename, so with the default
min_age it still waits.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
from harness import (
    WorkerProcess,
    drop_manifest,
    emit,
    job_manifest,
    machine,
    stderr_tail,
    worker_env,
    write_distinct_audio,
)

from tests.emulator_harness import EmulatorProcess, emulator_process
from worker.config.settings import Settings

READY_TIMEOUT_S = 30.0
MODES = [(False, 0.0), (True, 0.0), (False, None), (True, None)]  # (polling, min_age)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=5, help="drops per mode")
    p.add_argument("--seed", type=int, default=7, help="seed of the random drop offsets")
    return p


async def _stats(emu: EmulatorProcess, method: str = "GET") -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"{emu.root_url}/_emulator/stats") as resp,
    ):
        resp.raise_for_status()
        return dict(await resp.json())


async def _first_at(emu: EmulatorProcess, within: float) -> float:
    """The emulator's first_at, once there is one (another process: nothing to wait on)."""
    async with asyncio.timeout(within):
        while True:
            at = (await _stats(emu))["requests"]["first_at"]
            if at is not None:
                return float(at)
            await asyncio.sleep(0.01)


async def _reports_at_least(queue: Path, n: int, within: float) -> None:
    async with asyncio.timeout(within):
        while True:
            if len(list((queue / "reports").glob("*.report.json"))) >= n:
                return
            await asyncio.sleep(0.05)


async def one_mode(
    emu: EmulatorProcess,
    root: Path,
    index: int,
    *,
    polling: bool,
    min_age: float | None,
    trials: int,
    rng: random.Random,
) -> dict[str, Any]:
    name = f"{'polling' if polling else 'events'}-{'default' if min_age is None else min_age}"
    queue = root / name / "queue"
    audio = write_distinct_audio(queue / "audio", trials, prefix=f"m{index}", start=index * 1000)
    extra: dict[str, Any] = {"queue_polling": "1" if polling else "0"}
    if min_age is not None:
        extra["min_age"] = min_age
    env = worker_env(queue, emu.base_url, 100, **extra)
    if min_age is None:
        del env["ENROLLER_MIN_AGE"]  # the default
    (queue / "inbox").mkdir(parents=True, exist_ok=True)
    await _stats(emu, "DELETE")
    worker = WorkerProcess(env, root, once=False, stderr_path=root / f"{name}.log")
    worker.start()
    latencies: list[float] = []
    idle_requests = 0
    try:
        await _first_at(emu, READY_TIMEOUT_S)  # ready: the start-up check reached the API
        await asyncio.sleep(1.0)  # the watcher is set up after the start-up check
        for i, file in enumerate(audio):
            await _stats(emu, "DELETE")
            await asyncio.sleep(rng.uniform(0.3, 2.3))  # a random phase against any polling
            if (await _stats(emu))["requests"]["first_at"] is not None:
                idle_requests += 1  # the idle daemon called the API: would skew the figure
                await _stats(emu, "DELETE")
            dropped_at = drop_manifest(queue, f"pickup-{i}.json", job_manifest([file]))
            latencies.append(await _first_at(emu, 30.0) - dropped_at)
            await _reports_at_least(queue, i + 1, 30.0)  # the job is over: no stray requests
    finally:
        worker.terminate()
        run = await asyncio.to_thread(worker.wait)
    result: dict[str, Any] = {
        "queue_polling": polling,
        "min_age_s": min_age if min_age is not None else Settings.model_fields["min_age"].default,
        "poll_interval_s": Settings.model_fields["poll_interval"].default if polling else None,
        "trials": len(latencies),
        "median_s": round(statistics.median(latencies), 3),
        "min_s": round(min(latencies), 3),
        "max_s": round(max(latencies), 3),
        "all_s": [round(x, 3) for x in latencies],
        "idle_requests": idle_requests,
        "worker_exit_code": run.returncode,
    }
    if run.returncode not in (0, None):
        result["worker_stderr_tail"] = stderr_tail(run.stderr_path)
    return result


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    modes: dict[str, Any] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-pickup-") as tmp:
        async with emulator_process(rate_limit=0, latency_ms=0) as emu:
            for index, (polling, min_age) in enumerate(MODES):
                kind = "polling" if polling else "events"
                key = f"{kind}_min_age_{'0' if min_age == 0 else 'default'}"
                modes[key] = await one_mode(
                    emu,
                    Path(tmp),
                    index,
                    polling=polling,
                    min_age=min_age,
                    trials=args.trials,
                    rng=rng,
                )
    return {
        "benchmark": "pickup",
        "machine": machine(),
        "modes": modes,
        "elapsed_s": round(time.monotonic() - started, 1),
    }


def main() -> None:
    emit(asyncio.run(measure(parser().parse_args())))


if __name__ == "__main__":
    main()
