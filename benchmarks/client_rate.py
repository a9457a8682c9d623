"""Benchmark of the API client against the emulator, at issue 3's numbers; prints JSON.

    .venv/bin/python benchmarks/client_rate.py [--quick] [--upload-mb 200]

Scenarios ("done when" of issue 3):
  at_limit      server --rate-limit 20, client 20: 400 requests from 50 tasks (~20 s, no 429)
  over_limit    server 20, client 40: every request succeeds, 429s a small fraction
  faults        --fault-rate 0.2: every idempotent call succeeds
  timeout       --latency-ms above the client's timeout: audio create is outcome-unknown, once
  upload        streaming a large file: the client's traced memory peak and RSS growth
`--quick` divides request counts by 4 for a smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import structlog
from pydantic import SecretStr

from tests.emulator_harness import DEMO_KEY, emulator_process, running_emulator
from worker.api.auth import ApiKeyAuth
from worker.api.backoff import RetryPolicy
from worker.api.client import ApiClient
from worker.api.errors import OutcomeUnknown
from worker.api.governor import Governor
from worker.audio.files import VerifiedUpload

OWNER, SPACE = "demo", "main"


def client(url: str, rate: float, *, timeout: float = 30.0, max_retries: int = 6) -> ApiClient:
    return ApiClient(
        url,
        ApiKeyAuth(SecretStr(DEMO_KEY)),
        governor=Governor(rate, 1, max_in_flight=64),
        request_timeout=timeout,
        retry=RetryPolicy(max_retries=max_retries, max_time=120),
    )


async def hammer(api: ApiClient, requests: int, tasks: int) -> tuple[float, list[float], int]:
    """`requests` GETs from `tasks` tasks: (elapsed s, send times, failures)."""
    sent: list[float] = []
    wait_turn = api.governor.wait_turn

    async def recorded() -> None:
        await wait_turn()
        sent.append(time.monotonic())

    api.governor.wait_turn = recorded  # type: ignore[method-assign]
    failures = 0

    async def worker(n: int) -> None:
        nonlocal failures
        for _ in range(n):
            try:
                await api.list_models()
            except Exception:
                failures += 1

    started = time.monotonic()
    per, extra = divmod(requests, tasks)
    await asyncio.gather(*(worker(per + (i < extra)) for i in range(tasks)))
    return time.monotonic() - started, sorted(sent), failures


def spacing(sent: list[float]) -> dict[str, float]:
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    if not gaps:
        return {}
    cuts = statistics.quantiles(gaps, n=100)
    return {
        "gap_mean_ms": round(1000 * statistics.fmean(gaps), 2),
        "gap_p1_ms": round(1000 * cuts[0], 2),
        "gap_p99_ms": round(1000 * cuts[98], 2),
    }


async def rate_scenario(server: float, client_rate: float, requests: int) -> dict[str, Any]:
    async with running_emulator(rate_limit=server) as emu:
        async with client(emu.base_url, client_rate) as api:
            elapsed, sent, failures = await hammer(api, requests, tasks=50)
        stats = await emu.stats()
    ok = stats["requests"]["by_status"].get("200", 0)
    return {
        "server_rate": server,
        "client_rate": client_rate,
        "requests": requests,
        "tasks": 50,
        "elapsed_s": round(elapsed, 2),
        "achieved_rps": round(ok / elapsed, 2),
        "succeeded": ok,
        "failed": failures,
        "http_429": stats["rate_limited"],
        "share_429": round(stats["rate_limited"] / max(1, len(sent)), 4),
        "retry_after_violations": stats["retry_after_violations"],
        "client_rate_learned": round(api.governor.stats.rate, 2),
        "wait_s_total": round(api.governor.stats.wait_seconds, 1),
        **spacing(sent),
    }


async def fault_scenario(requests: int) -> dict[str, Any]:
    async with running_emulator(fault_rate=0.2, seed=42) as emu:
        async with client(emu.base_url, 200) as api:
            elapsed, _, failures = await hammer(api, requests, tasks=50)
        stats = await emu.stats()
    return {
        "fault_rate": 0.2,
        "requests": requests,
        "failed": failures,
        "faults_injected": stats["faults"],
        "retries": api.governor.stats.retries,
        "elapsed_s": round(elapsed, 2),
    }


async def timeout_scenario() -> dict[str, Any]:
    async with (
        running_emulator(latency_ms=1500) as emu,
        client(emu.base_url, 20, timeout=1.0) as api,
    ):
        started = time.monotonic()
        try:
            await api.create_audio(OWNER, SPACE, alias="sha256:bench")
            outcome: dict[str, Any] = {"raised": None}
        except OutcomeUnknown as exc:
            outcome = {"raised": type(exc).__name__, "kind": exc.kind, "attempts": exc.attempts}
        outcome["elapsed_s"] = round(time.monotonic() - started, 2)
        outcome["requests_sent"] = api.governor.stats.requests
    return {"latency_ms": 1500, "request_timeout_s": 1.0, **outcome}


async def upload_scenario(megabytes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.wav"
        chunk = b"\x00\x01" * (512 * 1024)
        with path.open("wb") as f:
            for _ in range(megabytes):
                f.write(chunk)
        limit = (megabytes + 1) * 1024 * 1024
        async with (
            emulator_process(max_upload_bytes=limit) as emu,
            client(emu.base_url, 20) as api,
        ):
            audio = await api.create_audio(OWNER, SPACE, alias="bench-upload")
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            tracemalloc.start()
            started = time.monotonic()
            result = await api.upload_audio_file(OWNER, SPACE, audio.handle, path)
            elapsed = time.monotonic() - started
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "file_mb": megabytes,
        "state": str(result.state),
        "elapsed_s": round(elapsed, 2),
        "mb_per_s": round(megabytes / elapsed, 1),
        "traced_peak_mb": round(peak / 1e6, 2),
        "max_rss_growth_mb": round((rss_after - rss_before) / 1024, 1),  # ru_maxrss is KiB
    }


async def inline_scenario(megabytes: int, files: int) -> dict[str, Any]:
    """RSS growth of `files` audio creates with `megabytes` MiB each inline (base64, streamed)."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for n in range(files):
            path = Path(tmp) / f"inline-{n}.wav"
            with path.open("wb") as f:
                for _ in range(megabytes):
                    f.write(bytes([n % 256]) * (1024 * 1024))
            paths.append(path)
        uploads = [VerifiedUpload.from_path(p) for p in paths]
        limit = (megabytes + 1) * 1024 * 1024
        async with (
            emulator_process(max_upload_bytes=limit) as emu,
            client(emu.base_url, 20) as api,
        ):
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            tracemalloc.start()
            started = time.monotonic()
            for n, upload in enumerate(uploads):
                await api.create_audio(OWNER, SPACE, alias=f"bench-inline-{n}", file=upload)
            elapsed = time.monotonic() - started
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "file_mb": megabytes,
        "files": files,
        "elapsed_s": round(elapsed, 2),
        "traced_peak_mb": round(peak / 1e6, 2),
        "max_rss_growth_mb": round((rss_after - rss_before) / 1024, 1),  # ru_maxrss is KiB
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the requests")
    parser.add_argument("--upload-mb", type=int, default=200, help="upload size (0: skip)")
    args = parser.parse_args()
    n = 100 if args.quick else 400
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # errors only
    results: dict[str, Any] = {
        "at_limit": await rate_scenario(20, 20, n),
        "over_limit": await rate_scenario(20, 40, n),
        "faults": await fault_scenario(n),
        "timeout": await timeout_scenario(),
    }
    if args.upload_mb:
        results["upload"] = await upload_scenario(args.upload_mb)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
