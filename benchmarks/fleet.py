"""Fleet benchmark (issue 14): N workers on one queue and one API account, with and without Redis.

Each run: an emulator process enforcing the account's limit R (429 + Retry-After above it) with
`--latency-ms`, `--manifests` manifests of `--per-manifest` enrollments in one inbox, and
`--workers` `enroller run --once` processes started together, each set to the account's R.
Without Redis every worker paces itself to the whole R (the trap); with `ENROLLER_REDIS_URL`
they share one budget. Prints one JSON object with both runs side by side: the fleet's fraction
of R over its active span (first to last request at the emulator), the 429 share, and whether
every identity was enrolled exactly once.

    .venv/bin/python benchmarks/fleet.py                      # 3 workers, R=90, 40 ms
    .venv/bin/python benchmarks/fleet.py --workers 3 --rate-limit 90 --latency-ms 40

Needs `redis-server` on PATH (Debian: apt-get install redis-server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    WorkerProcess,
    drop_manifest,
    emit,
    machine,
    worker_env,
    write_distinct_audio,
)

from tests.emulator_harness import emulator_process
from tests.redis_harness import running_redis


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--rate-limit", type=float, default=90.0)
    p.add_argument("--burst", type=int, default=5)
    p.add_argument("--latency-ms", type=float, default=40.0)
    p.add_argument("--manifests", type=int, default=6)
    p.add_argument("--per-manifest", type=int, default=80)
    return p


async def one_run(args: argparse.Namespace, redis_url: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        root = Path(tmp)
        queue = root / "queue"
        total = args.manifests * args.per_manifest
        names = write_distinct_audio(queue / "audio", total)
        async with emulator_process(
            rate_limit=args.rate_limit, burst=args.burst, latency_ms=args.latency_ms
        ) as emu:
            for m in range(args.manifests):
                chunk = names[m * args.per_manifest : (m + 1) * args.per_manifest]
                enrollments = [{"identity": n.removesuffix(".wav"), "audios": [n]} for n in chunk]
                drop_manifest(queue, f"batch-{m}.json", {"enrollments": enrollments})
            extra: dict[str, Any] = {"burst": args.burst, "max_jobs": 2}
            if redis_url:
                extra["redis_url"] = redis_url
            env = worker_env(queue, emu.base_url, args.rate_limit, **extra)
            workers = [
                WorkerProcess(env, root, once=True, stderr_path=root / f"worker-{i}.log")
                for i in range(args.workers)
            ]
            for worker in workers:
                worker.start()
            runs = await asyncio.gather(*(asyncio.to_thread(w.wait) for w in workers))
            stats = await emu.stats()
        rows = [
            row
            for path in (queue / "reports").glob("*.report.json")
            for row in json.loads(path.read_text())["enrollments"]
        ]
    requests = stats["requests"]
    active = requests["last_at"] - requests["first_at"]
    identities = [r["identity"] for r in rows]
    return {
        "redis": bool(redis_url),
        "exit_codes": [r.returncode for r in runs],
        "enrollments": total,
        "enrolled": sum(1 for r in rows if r["outcome"] == "enrolled"),
        "each_identity_once": len(identities) == len(set(identities)) == total,
        "computes": stats["created"]["computes"],
        "requests": requests["total"],
        "http_429": stats["rate_limited"],
        "throttled_share": round(stats["rate_limited"] / max(requests["total"], 1), 4),
        "active_s": round(active, 2),
        "fraction_of_r": round(requests["total"] / active / args.rate_limit, 3),
        "wall_s": round(max(r.wall_s for r in runs), 2),
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server not found: apt-get install redis-server")
    without = await one_run(args, None)
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp, running_redis(Path(tmp)) as r:
        with_redis = await one_run(args, r.url)
    return {
        "benchmark": "fleet",
        "machine": machine(),
        "params": vars(args),
        "without_redis": without,
        "with_redis": with_redis,
    }


def main() -> None:
    emit(asyncio.run(measure(parser().parse_args())))


if __name__ == "__main__":
    main()
