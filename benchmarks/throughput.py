"""Throughput of the whole worker against a rate-limited API; prints one JSON object.

    .venv/bin/python benchmarks/throughput.py [--rate-limit R] [--latency-ms L] [--enrollments N]
        [--file-delay-ms F --compute-delay-ms C] [--audios 1,2]

The emulator runs in its own process (`python -m emulator --rate-limit R --latency-ms L`);
N enrollments (one small distinct audio each, or `--audios 1,2`: 1, 2, 1, 2 … each) are
dropped into a fresh queue as one manifest; `--file-delay-ms` / `--compute-delay-ms` turn on
the emulator's asynchronous processing (api-contract.md §5);
`python -m worker run --once` runs as a child with ENROLLER_RATE_LIMIT=R and drains it.

Reported: wall time of the worker process (start to exit, Python start-up included),
enrollments/s, requests per enrollment and 429s (from `/_emulator/stats`), achieved
requests/s over the active window (first to last API request, as the emulator saw them) and
over the whole run (process start to exit) as fractions of R, and the worker's CPU seconds
per 1000 requests (`os.wait4` rusage). `phases` splits the time outside the paced pipeline:
`startup_s` (process start to the first API request: Python, imports, settings), `head_s`
(the share of the first active second not used: the enrollments preflighted before their
first request), `usage_tail_s` (last enrollment finished to the last request: the usage
check) and `exit_tail_s` (last request to exit: reports, finish). `emulator` says when 429s came and
how late the emulator's event loop woke (a stalled server bunches arrivals into 429s).

On a shared machine run it through `benchmarks/prio.sh` (nice alone does not count across
sessions when the kernel groups them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    MODEL,
    WorkerRun,
    drop_manifest,
    emit,
    identity_of,
    job_manifest,
    machine,
    read_report,
    run_worker_once,
    stderr_tail,
    worker_env,
    write_distinct_audio,
)

from tests.emulator_harness import emulator_process


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate-limit", type=float, default=50.0, help="R: server and worker limit")
    p.add_argument("--latency-ms", type=float, default=50.0, help="L: emulator latency per call")
    p.add_argument("--enrollments", type=int, default=300, help="N enrollments in one manifest")
    p.add_argument("--burst", type=int, default=10, help="the emulator's burst (its default)")
    p.add_argument(
        "--worker-burst", type=int, default=None, help="ENROLLER_BURST (default: the worker's)"
    )
    p.add_argument(
        "--worker-rate-limit",
        type=float,
        default=None,
        help="ENROLLER_RATE_LIMIT when it should differ from R",
    )
    p.add_argument("--file-delay-ms", type=float, default=0.0, help="emulator: async files")
    p.add_argument("--compute-delay-ms", type=float, default=0.0, help="emulator: async compute")
    p.add_argument("--keep-log", type=Path, default=None, help="copy the worker's log here")
    p.add_argument("--audios", default="1", help="audios per enrollment, cycled: '1', '2' or '1,2'")
    return p


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (from /proc; 0 when unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_times(log: Path) -> dict[str, float]:
    """Epoch seconds of the worker's first line, job start and last enrollment, from its log."""
    times: dict[str, float] = {}
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return times
    for line in lines:
        try:
            entry = json.loads(line)
            at = datetime.fromisoformat(entry["timestamp"]).timestamp()
        except (ValueError, KeyError, TypeError):
            continue
        times.setdefault("first_line", at)
        if entry.get("event") == "job_started":
            times.setdefault("job_started", at)
        if entry.get("event") == "enrollment_finished":
            times["last_enrollment"] = at
    return times


def phases(
    run: WorkerRun,
    log: dict[str, float],
    first: float,
    last: float,
    per_second: list[int],
    r: float,
) -> dict[str, float]:
    """The time outside the paced pipeline, in seconds (see the module docstring)."""
    exit_at = run.started_at + run.wall_s
    split = {
        "startup_s": first - run.started_at,
        "head_s": max(0.0, 1.0 - per_second[0] / r) if per_second else 0.0,
        "usage_tail_s": last - log.get("last_enrollment", last),
        "exit_tail_s": exit_at - last,
    }
    return {k: round(v, 3) for k, v in split.items()}


def _trimmed(lag: dict[str, Any], keep: int = 20) -> dict[str, Any]:
    return {**lag, "stalls": lag.get("stalls", [])[:keep]} if lag else {}


def cycled_manifest(names: list[str], sizes: list[int]) -> dict[str, Any]:
    """Enrollments of `sizes[i % len]` audios each, taking the names in order."""
    enrollments, at, i = [], 0, 0
    while at < len(names):
        group = names[at : at + sizes[i % len(sizes)]]
        enrollments.append({"identity": identity_of(group[0]), "audios": group})
        at += len(group)
        i += 1
    return {"model": MODEL, "enrollments": enrollments}


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    r, n = args.rate_limit, args.enrollments
    client_rate = args.worker_rate_limit or r
    sizes = [int(k) for k in args.audios.split(",")]
    files = sum(sizes[i % len(sizes)] for i in range(n))
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        root = Path(tmp)
        queue = root / "queue"
        names = write_distinct_audio(queue / "audio", files)
        delays = {"file_delay_ms": args.file_delay_ms, "compute_delay_ms": args.compute_delay_ms}
        async with emulator_process(
            rate_limit=r,
            burst=args.burst,
            latency_ms=args.latency_ms,
            **{k: v for k, v in delays.items() if v},
        ) as emu:
            manifest = job_manifest(names) if sizes == [1] else cycled_manifest(names, sizes)
            drop_manifest(queue, "bench.json", manifest)
            extra = {} if args.worker_burst is None else {"burst": args.worker_burst}
            env = worker_env(queue, emu.base_url, client_rate, **extra)
            emulator_cpu = _cpu_s(emu.pid)
            run = await asyncio.to_thread(run_worker_once, env, root, root / "worker.base.log")
            stats = await emu.stats()
            emulator_cpu = _cpu_s(emu.pid) - emulator_cpu
        report = read_report(queue)
        times = log_times(root / "worker.base.log")
        if args.keep_log is not None:
            shutil.copyfile(root / "worker.base.log", args.keep_log)
        tail = stderr_tail(run.stderr_path) if run.returncode else ""

    requests = stats["requests"]
    total = requests["total"]
    first, last = requests.get("first_at"), requests.get("last_at")
    active = (last - first) if first and last else run.wall_s
    per_second = stats.get("per_second") or []
    split = phases(run, times, first, last, per_second, r) if first and last else {}
    counts = (report or {}).get("counts", {})
    result: dict[str, Any] = {
        "benchmark": "throughput",
        "machine": machine(),
        "params": {
            "rate_limit": r,
            "worker_rate_limit": client_rate,
            "worker_burst": args.worker_burst,
            "emulator_burst": args.burst,
            "latency_ms": args.latency_ms,
            "enrollments": n,
            "audios_per_enrollment": args.audios,
            "audio_files": files,
            "file_delay_ms": args.file_delay_ms,
            "compute_delay_ms": args.compute_delay_ms,
        },
        "exit_code": run.returncode,
        "enrolled": counts.get("enrolled", 0),
        "counts": counts,
        "wall_s": round(run.wall_s, 2),
        "active_s": round(active, 2),
        "enrollments_per_s": round(n / run.wall_s, 2),
        "requests": total,
        "requests_per_enrollment": round(total / n, 2),
        "by_route": requests["by_route"],
        "achieved_rps": round(total / active, 2),
        "achieved_fraction_of_r": round(total / active / r, 3),
        # Over the whole `run --once`, process start to exit (issue 13's measure).
        "whole_run_fraction_of_r": round(total / run.wall_s / r, 3),
        "http_409": requests["by_status"].get("409", 0),
        "http_429": stats["rate_limited"],
        "retry_after_violations": stats.get("retry_after_violations"),
        "worker_cpu_s": round(run.cpu_s, 2),
        "worker_cpu_s_per_1000_requests": round(1000 * run.cpu_s / max(total, 1), 2),
        "worker_peak_rss_mb": run.peak_rss_mb,
        "phases": split,
        "emulator": {
            "cpu_s": round(emulator_cpu, 2),
            "loop_lag": _trimmed(stats.get("loop_lag") or {}),
            "throttled_at": stats.get("throttled_at", [])[:20],
            "answers_per_second": stats.get("per_second"),
        },
    }
    if tail:
        result["worker_stderr_tail"] = tail
    return result


def main() -> None:
    args = parser().parse_args()
    emit(asyncio.run(measure(args)))


if __name__ == "__main__":
    main()
