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

`--parse-only` (issue 18) instead runs `enroller validate`, `enroller validate --json` and
`enroller plan` as children over a generated `--rows`-row CSV and a `--rows`-enrollment JSON
manifest (no audio exists, so every row is a problem: the worst case for anything that keeps
problems; each child's output is counted, not kept) and reports each child's peak RSS
(`ru_maxrss` from `os.wait4` in a bare forking interpreter), wall time and lines written,
with an idle `enroller config` for scale:

    .venv/bin/python benchmarks/memory.py --parse-only [--rows 1000000] [--jobs 7]
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
from concurrent.futures import ThreadPoolExecutor
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
    p.add_argument(
        "--jobs", type=int, default=1, help="--parse-only children at once (peaks stay apart)"
    )
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
            run = await asyncio.to_thread(run_worker_once, env, root, root / "worker.base.log")
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


# A child's peak RSS counts from what its parent held when it forked (Linux copies the high
# water mark at fork and keeps it across exec), and this process holds ~80 MB of imports. So
# the child is forked by a bare interpreter instead, which reports the child's own peak.
_FORKER = """
import os, sys
fd, argv = int(sys.argv[1]), sys.argv[2:]
pid = os.fork()
if pid == 0:
    os.execv(argv[0], argv)
_, status, usage = os.wait4(pid, 0)
os.write(fd, str(usage.ru_maxrss).encode())
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _child_peak(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    started = time.monotonic()
    read_end, write_end = os.pipe()
    forker = [sys.executable, "-S", "-c", _FORKER, str(write_end)]
    with tempfile.TemporaryFile() as sink:
        proc = subprocess.Popen(
            [*forker, *argv], env=env, stdout=sink, stderr=subprocess.DEVNULL, pass_fds=(write_end,)
        )
        os.close(write_end)
        code = proc.wait()
        with os.fdopen(read_end, "rb") as fh:
            max_rss_kib = int(fh.read() or 0)
        sink.seek(0)
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: sink.read(1 << 20), b""))
    return {
        "exit_code": code,
        "peak_rss_mb": round(max_rss_kib / 1024, 1),
        "wall_s": round(time.monotonic() - started, 1),
        "output_lines": lines,
    }


def parse_only(rows: int, jobs: int = 1) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-parse-") as tmp:
        root = Path(tmp)
        (root / "audio").mkdir()
        files = _write_parse_manifests(root, rows)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENROLLER_")}
        env.update(ENROLLER_OWNER="demo", ENROLLER_SPACE="main", ENROLLER_LOG_LEVEL="error")
        enroller = [sys.executable, "-m", "worker"]
        runs: dict[tuple[str, str], list[str]] = {("idle", ""): [*enroller, "config"]}
        for kind, path in files.items():
            for command in (["validate"], ["validate", "--json"], ["plan"]):
                argv = [*enroller, *command, "--audio-root", str(root / "audio"), str(path)]
                runs[kind, " ".join(command)] = argv
        # Each child's peak is its own (ru_maxrss), so children may run side by side.
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            done = {key: pool.submit(_child_peak, argv, env) for key, argv in runs.items()}
        out: dict[str, Any] = {"rows": rows, "jobs": jobs, "idle": done["idle", ""].result()}
        for kind, path in files.items():
            out[kind] = {"bytes": path.stat().st_size}
            for (k, command), future in done.items():
                if k == kind:
                    out[kind][command] = future.result()
        return out


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    if args.parse_only:
        figures = parse_only(args.rows, args.jobs)
        return {"benchmark": "memory-parse", "machine": machine(), **figures}
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
