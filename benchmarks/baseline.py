"""The loop a user would otherwise write, against the same emulator; prints one JSON object.

    .venv/bin/python benchmarks/baseline.py [--rate-limit R] [--latency-ms L] [--enrollments N]
        [--throughput-json FILE]

The guide's steps one after another, one enrollment after another, with the same client
library (`worker.api.client.ApiClient`, its governor at R): create identity, create audio,
upload the file, create voiceprint, add the audio, compute. Same emulator settings and the
same N small audio files as `throughput.py`.

The speed-up is throughput.py's enrollments/s over this loop's: read from `--throughput-json`
(the JSON that throughput.py printed), or, without it, measured by running throughput.py
with the same arguments first. The loop runs one enrollment after another, so its rate does
not depend on N: `--worker-enrollments` lets the worker's run be longer than the loop's (to
amortize the worker's process start), and the output says both Ns.

`side_by_side` puts issue 13's three figures in one place: the worker's requests per
enrollment, its fraction of R over the whole `run --once` (process start to exit), and the
ratio of its enrollments/s to this loop's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import structlog
from harness import MODEL, OWNER, SPACE, emit, identity_of, machine, write_distinct_audio
from pydantic import SecretStr

from tests.emulator_harness import DEMO_KEY, emulator_process
from worker.api.auth import ApiKeyAuth
from worker.api.client import ApiClient
from worker.api.governor import Governor


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate-limit", type=float, default=50.0, help="R: server and client limit")
    p.add_argument("--latency-ms", type=float, default=50.0, help="L: emulator latency per call")
    p.add_argument("--enrollments", type=int, default=300, help="N enrollments")
    p.add_argument("--burst", type=int, default=10, help="the emulator's burst (its default)")
    p.add_argument(
        "--throughput-json", type=Path, default=None, help="throughput.py's output to compare"
    )
    p.add_argument(
        "--worker-enrollments",
        type=int,
        default=None,
        help="N of the worker's run when throughput.py runs here (default: --enrollments)",
    )
    return p


async def enroll_one(api: ApiClient, identity: str, path: Path) -> None:
    """The guide, step by step."""
    await api.create_identity(OWNER, SPACE, identity)
    audio = await api.create_audio(OWNER, SPACE)
    await api.upload_audio_file(OWNER, SPACE, audio.handle, path)
    vp = await api.create_voiceprint(OWNER, SPACE, identity, MODEL)
    await api.add_audio_to_voiceprint(OWNER, SPACE, identity, vp.handle, audio.handle)
    await api.compute_voiceprint(OWNER, SPACE, identity, vp.handle)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    n = args.enrollments
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # errors only
    failures = 0
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as tmp:
        audio_dir = Path(tmp) / "audio"
        names = write_distinct_audio(audio_dir, n)
        async with emulator_process(
            rate_limit=args.rate_limit, burst=args.burst, latency_ms=args.latency_ms
        ) as emu:
            api = ApiClient(
                emu.base_url,
                ApiKeyAuth(SecretStr(DEMO_KEY)),
                governor=Governor(args.rate_limit, 1),
            )
            async with api:
                started = time.monotonic()
                for name in names:
                    try:
                        await enroll_one(api, identity_of(name), audio_dir / name)
                    except Exception:
                        failures += 1
                wall = time.monotonic() - started
            stats = await emu.stats()
    total = stats["requests"]["total"]
    return {
        "benchmark": "baseline",
        "machine": machine(),
        "params": {"rate_limit": args.rate_limit, "latency_ms": args.latency_ms, "enrollments": n},
        "wall_s": round(wall, 2),
        "enrollments_per_s": round(n / wall, 2),
        "enrolled": stats["created"]["computes"],
        "failed": failures,
        "requests": total,
        "achieved_rps": round(total / wall, 2),
        "http_429": stats["rate_limited"],
    }


def throughput_figures(args: argparse.Namespace) -> dict[str, Any]:
    if args.throughput_json is not None:
        return json.loads(args.throughput_json.read_text())
    argv = [
        sys.executable,
        str(Path(__file__).resolve().parent / "throughput.py"),
        f"--rate-limit={args.rate_limit}",
        f"--latency-ms={args.latency_ms}",
        f"--enrollments={args.worker_enrollments or args.enrollments}",
        f"--burst={args.burst}",
    ]
    return json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)


def main() -> None:
    args = parser().parse_args()
    worker = throughput_figures(args)
    result = asyncio.run(measure(args))
    params = worker.get("params", {})
    same = params.get("rate_limit") == args.rate_limit and params.get("latency_ms") == (
        args.latency_ms
    )
    result["worker_enrollments"] = params.get("enrollments")
    result["worker_wall_s"] = worker.get("wall_s")
    result["worker_enrollments_per_s"] = worker.get("enrollments_per_s")
    result["speedup"] = (
        round(worker["enrollments_per_s"] / result["enrollments_per_s"], 2) if same else None
    )
    # Best any loop of one request at a time can reach against the pacing: R × per-request time.
    result["speedup_ceiling_at_this_r"] = round(
        args.rate_limit * result["wall_s"] / max(result["requests"], 1), 2
    )
    result["side_by_side"] = {
        "rate_limit": args.rate_limit,
        "latency_ms": args.latency_ms,
        "worker_enrollments": params.get("enrollments"),
        "loop_enrollments": args.enrollments,
        "requests_per_enrollment": worker.get("requests_per_enrollment"),
        "whole_run_fraction_of_r": worker.get("whole_run_fraction_of_r"),
        "http_429": worker.get("http_429"),
        "speedup": result["speedup"],
    }
    emit(result)


if __name__ == "__main__":
    main()
