"""Peak memory of the worker: a 50 000-enrollment manifest, and one 200 MB upload; prints JSON.

    .venv/bin/python benchmarks/memory.py [--enrollments 50000] [--upload-mb 200]

1. `python -m worker run --once` as a child on one manifest of N enrollments (one small distinct
   audio each), against the emulator in its own process at latency 0 and no rate limit, with the
   worker's limit set high. Peak RSS is the child's VmHWM (sampled from /proc every 50 ms) and
   its `ru_maxrss` from `os.wait4`, whichever is larger. For scale, the same worker on an empty
   queue gives the start-up peak. At 50 000 this takes minutes (mostly the emulator analysing
   50 000 uploads on the same cores); `--enrollments` scales it down.
2. The RSS growth of streaming one large file through `ApiClient.upload_audio_file`: measured by
   `client_rate.upload_scenario` (one implementation), first, in this still-small process.
3. The same for `--inline-files` creates with `--inline-mb` MiB each inline (base64 streamed
   inside the JSON body, `client_rate.inline_scenario`).

`--parse-only` (issue 18) instead runs `enroller validate` and `enroller plan` as children over a
generated `--rows`-row CSV and a `--rows`-enrollment JSON manifest (no audio exists, so every
row is a problem: the worst case for anything that keeps problems) and reports each child's
peak RSS (`ru_maxrss` from `os.wait4`) and wall time:

    .venv/bin/python benchmarks/memory.py --parse-only [--rows 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import structlog
from client_rate import inline_scenario, upload_scenario
from harness import (
    drop_manifest,
    emit,
    job_manifest,
    machine,
    read_report,
    run_worker_once,
    stderr_tail,
    worker_env,
    write_distinct_audio,
)

from tests.emulator_harness import emulator_process

WORKER_RATE = 100_000  # "unlimited": the governor never paces


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--enrollments", type=int, default=50_000, help="N in the one manifest")
    p.add_argument("--upload-mb", type=int, default=200, help="size of the upload (0: skip)")
    p.add_argument("--inline-mb", type=int, default=8, help="size of each inline upload (0: skip)")
    p.add_argument("--inline-files", type=int, default=8, help="inline uploads, one after another")
    p.add_argument("--parse-only", action="store_true", help="validate/plan over huge manifests")
    p.add_argument("--rows", type=int, default=1_000_000, help="rows of the --parse-only files")
    return p


async def big_manifest(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        root = Path(tmp)
        queue = root / "queue"
        started = time.monotonic()
        names = write_distinct_audio(queue / "audio", n)
        prepared_s = time.monotonic() - started
        async with emulator_process(rate_limit=0, latency_ms=0) as emu:
            env = worker_env(queue, emu.base_url, WORKER_RATE, burst=100)
            idle = await asyncio.to_thread(run_worker_once, env, root, root / "idle.log")
            manifest = job_manifest(names)
            manifest_mb = len(json.dumps(manifest)) / 1e6
            drop_manifest(queue, "memory.json", manifest)
            run = await asyncio.to_thread(run_worker_once, env, root, root / "worker.log")
            stats = await emu.stats()
        report = read_report(queue) or {}
        tail = stderr_tail(run.stderr_path) if run.returncode else ""
    result: dict[str, Any] = {
        "enrollments": n,
        "manifest_mb": round(manifest_mb, 1),
        "audio_prepared_s": round(prepared_s, 1),
        "exit_code": run.returncode,
        "counts": report.get("counts", {}),
        "wall_s": round(run.wall_s, 1),
        "enrollments_per_s": round(n / run.wall_s, 1),
        "requests": stats["requests"]["total"],
        "worker_cpu_s": round(run.cpu_s, 1),
        "peak_rss_mb": run.peak_rss_mb,
        "idle_worker_peak_rss_mb": idle.peak_rss_mb,
        "growth_over_idle_mb": round(run.peak_rss_mb - idle.peak_rss_mb, 1),
    }
    if tail:
        result["worker_stderr_tail"] = tail
    return result


def _write_parse_manifests(directory: Path, rows: int) -> dict[str, Path]:
    csv_path, json_path = directory / "big.csv", directory / "big.json"
    with csv_path.open("w", encoding="utf-8") as fh:
        fh.write("identity,audio\n")
        for i in range(rows):
            fh.write(f"cust-{i:07d},cust-{i:07d}/call-1.wav\n")
    with json_path.open("w", encoding="utf-8") as fh:
        fh.write('{"enrollments": [\n')
        for i in range(rows):
            sep = "" if i == 0 else ",\n"
            fh.write(f'{sep}{{"identity": "cust-{i:07d}", "audios": ["cust-{i:07d}/call-1.wav"]}}')
        fh.write("\n]}\n")
    return {"csv": csv_path, "json": json_path}


def _child_peak(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    started = time.monotonic()
    with open(os.devnull, "wb") as sink:
        proc = subprocess.Popen(argv, env=env, stdout=sink, stderr=sink)
        _, status, usage = os.wait4(proc.pid, 0)
    return {
        "exit_code": os.waitstatus_to_exitcode(status),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "wall_s": round(time.monotonic() - started, 1),
    }


def parse_only(rows: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-parse-") as tmp:
        root = Path(tmp)
        (root / "audio").mkdir()
        files = _write_parse_manifests(root, rows)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENROLLER_")}
        env.update(ENROLLER_OWNER="demo", ENROLLER_SPACE="main", ENROLLER_LOG_LEVEL="error")
        enroller = [sys.executable, "-m", "worker"]
        out: dict[str, Any] = {"rows": rows}
        out["idle"] = _child_peak([*enroller, "config"], env)
        for kind, path in files.items():
            out[kind] = {"bytes": path.stat().st_size}
            for command in ("validate", "plan"):
                argv = [*enroller, command, "--audio-root", str(root / "audio"), str(path)]
                out[kind][command] = _child_peak(argv, env)
        return out


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    if args.parse_only:
        return {"benchmark": "memory-parse", "machine": machine(), **parse_only(args.rows)}
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # errors only
    result: dict[str, Any] = {"benchmark": "memory", "machine": machine()}
    if args.upload_mb:
        result["upload"] = await upload_scenario(args.upload_mb)
    if args.inline_mb:
        result["inline_upload"] = await inline_scenario(args.inline_mb, args.inline_files)
    result["manifest"] = await big_manifest(args.enrollments)
    result["machine_after"] = machine()["loadavg"]
    return result


def main() -> None:
    emit(asyncio.run(measure(parser().parse_args())))


if __name__ == "__main__":
    main()
