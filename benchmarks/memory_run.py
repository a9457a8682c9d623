"""Run-mode memory (issue 18): the worker's peak RSS at N enrollments, and its slope; prints JSON.

    nice -n 19 .venv/bin/python benchmarks/memory_run.py [--sizes 10000,50000,200000]

For each N: a fresh queue, one JSON manifest of N single-audio enrollments (distinct
identities), then `python -m worker run --once` as a child against the emulator in its own
process (no rate limit, latency 0, synchronous files and computes: its fastest settings) with
the worker's own limit set out of reach. The figure is the worker's peak RSS (VmHWM sampled
every 50 ms, and `ru_maxrss` from `os.wait4`, whichever is larger) plus its own children's
(the preflight decoding process: the summed VmHWM of every descendant, at its largest), a
conservative sum: `worker_peak_rss_mb` + `children_peak_rss_mb` = `peak_rss_mb`. The emulator
holds every identity, audio and voiceprint in its own memory, and none of that is counted here.

`--memray DIR` runs the worker under memray (native frames, aggregated) to see what the
memory at the peak is made of: `memray stats DIR/run-N.bin`, `memray flamegraph …`.

To keep 200 000 enrollments feasible on a small machine, each enrollment's audio is a hard link
to one of `--audio-pool` distinct 4.6 s files (8 kHz, ~74 kB): 200 000 distinct files would be
15 GB. Every enrollment still has its own path (preflight opens, hashes and decodes each one),
identity, voiceprint, audio resource, upload, compute and journal records, so everything the
worker keeps per enrollment is exercised. Logs are at `warning` (a line per request costs CPU,
not memory).

The slope is (peak at the largest N − peak at the smallest N) / (largest N − smallest N), in
kB (1000 bytes) per enrollment; issue 18's target is below 0.1 between 10 000 and 200 000.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    MODEL,
    WorkerProcess,
    emit,
    machine,
    read_report,
    stderr_tail,
    vm_hwm_kib,
    worker_env,
    write_distinct_audio,
)

from tests.emulator_harness import emulator_process
from worker.manifest.read import STREAM_JSON_MIN_BYTES

SAMPLE_EVERY_S = 5.0  # the trajectory: (enrollments done, peak RSS so far) this often

WORKER_RATE = 100_000  # "unlimited": the governor never paces


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,50000,200000", help="comma-separated N")
    p.add_argument("--audio-pool", type=int, default=500, help="distinct audio files reused")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    p.add_argument(
        "--memray",
        type=Path,
        default=None,
        metavar="DIR",
        help="run the worker under `memray run --native --aggregate` (pip install memray), "
        "writing DIR/run-N.bin; its figures then include memray's own overhead",
    )
    return p


def linked_audio(directory: Path, n: int, pool: int) -> list[str]:
    """`n` audio paths: hard links to `pool` distinct files (one inode each, many names)."""
    originals = write_distinct_audio(directory / "pool", min(pool, n))
    names = []
    for i in range(n):
        name = f"cust-{i:07d}.wav"
        os.link(directory / "pool" / originals[i % len(originals)], directory / name)
        names.append(name)
    return names


def write_manifest(path: Path, n: int, audios: list[str]) -> float:
    """The manifest of `n` enrollments, streamed to disk (a 200 000 one is ~15 MB of JSON);
    dropped by rename like any producer. Returns its size in MB.

    Padded with trailing blanks to the size from which the worker streams a JSON manifest
    (`STREAM_JSON_MIN_BYTES`, 4 MiB): a smaller one is parsed whole, which would make the
    small sizes measure another parser than the large ones.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(f'{{"model": {json.dumps(MODEL)}, "enrollments": [\n')
        for i in range(n):
            sep = "" if i == 0 else ",\n"
            fh.write(f'{sep}{{"identity": "cust-{i:07d}", "audios": ["{audios[i]}"]}}')
        fh.write("\n]}\n")
        fh.write(" " * max(0, STREAM_JSON_MIN_BYTES - fh.tell()) + "\n")
    size = tmp.stat().st_size
    tmp.rename(path)
    return size / 1e6


def memray_args(directory: Path | None, n: int) -> list[str]:
    """`python -m memray run …` before `-m worker`: every allocation, native ones too (SQLite's,
    glibc's), aggregated to what was live at the peak and at the end."""
    if directory is None:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"run-{n}.bin"
    out.unlink(missing_ok=True)
    return [
        "-m", "memray", "run", "--native", "--trace-python-allocators", "--aggregate", "-q",
        "-o", str(out.resolve()),
    ]  # fmt: skip


async def one_size(
    n: int,
    pool: int,
    memray: Path | None = None,
    on_sample: Callable[[list[tuple[int, float]]], None] | None = None,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-memrun-") as tmp:
        root = Path(tmp)
        queue = root / "queue"
        audios = linked_audio(queue / "audio", n, pool)
        (queue / "inbox").mkdir(parents=True)
        async with emulator_process(rate_limit=0, latency_ms=0) as emu:
            env = worker_env(
                queue, emu.base_url, WORKER_RATE, burst=1000, log_level="warning", voice_margin=1
            )
            manifest_mb = write_manifest(queue / "inbox" / "run.json", n, audios)
            started = time.monotonic()
            worker = WorkerProcess(
                env,
                root,
                once=True,
                stderr_path=root / "worker.base.log",
                python_args=memray_args(memray, n),
            )
            worker.start()
            trajectory = await sample(worker, queue, on_sample)
            run = await asyncio.to_thread(worker.wait)
            wall = time.monotonic() - started
            stats = await emu.stats()
        report = read_report(queue) or {}
        tail = stderr_tail(run.stderr_path) if run.returncode else ""
    out: dict[str, Any] = {
        "enrollments": n,
        "manifest_mb": round(manifest_mb, 1),
        "exit_code": run.returncode,
        "counts": report.get("counts", {}),
        "usage_found": (report.get("usage") or {}).get("found"),
        "wall_s": round(wall, 1),
        "enrollments_per_s": round(n / max(wall, 1e-9), 1),
        "requests": stats["requests"]["total"],
        "worker_cpu_s": round(run.cpu_s, 1),
        # the worker's VmHWM, its children's summed VmHWM at their largest, and the two added:
        # a conservative peak (pages a forked child shares with the worker count twice)
        "worker_peak_rss_mb": run.peak_rss_mb,
        "children_peak_rss_mb": run.children_peak_rss_mb,
        "peak_rss_mb": round(run.peak_rss_mb + run.children_peak_rss_mb, 1),
        # (enrollments done, peak RSS MiB so far: worker + children) every few seconds
        "trajectory": trajectory,
    }
    if tail:
        out["worker_stderr_tail"] = tail
    return out


async def sample(
    worker: WorkerProcess,
    queue: Path,
    on_sample: Callable[[list[tuple[int, float]]], None] | None = None,
) -> list[tuple[int, float]]:
    """Until the worker exits: its `progress.json` count and the peak RSS so far (the worker's
    VmHWM plus its children's, as sampled by `WorkerProcess`), every few seconds."""
    assert worker.proc is not None and worker.children is not None
    points: list[tuple[int, float]] = []
    while _running(worker.proc.pid):
        await asyncio.sleep(SAMPLE_EVERY_S)
        done, hwm = await asyncio.to_thread(_done_and_hwm, worker.proc.pid, queue)
        if hwm:
            peak = round((hwm + worker.children.peak_kib) / 1024, 1)
            # a process tearing down its memory at exit may show a lower VmHWM for a moment
            points.append((done, max(peak, points[-1][1]) if points else peak))
            if on_sample is not None:
                on_sample(points)
    return points


def _running(pid: int) -> bool:
    """Not exited yet; leaves the child unreaped for `WorkerProcess.wait` (its wait4 rusage)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None


def _done_and_hwm(pid: int, queue: Path) -> tuple[int, int]:
    done = 0
    for progress in queue.glob("active/*/progress.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            done = int(json.loads(progress.read_text())["done"])
    return done, vm_hwm_kib(pid)


def slope_kb(runs: list[dict[str, Any]]) -> float | None:
    """kB (1000 bytes) of peak RSS per enrollment, between the smallest and the largest N."""
    if len(runs) < 2:
        return None
    lo, hi = runs[0], runs[-1]
    mb = hi["peak_rss_mb"] - lo["peak_rss_mb"]  # MiB, as the harness reports
    return round(mb * 1024 * 1024 / 1000 / (hi["enrollments"] - lo["enrollments"]), 4)


def write_json(path: Path, result: dict[str, Any]) -> None:
    """Whole or not at all: the file may be read (or the run stopped) at any moment."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.rename(path)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every size in turn; with `--out`, the file is rewritten after each one and every
    minute during one (`running`: the size under way and its trajectory so far), so a long
    run that is stopped keeps the sizes it finished and the curve of the one it did not."""
    sizes = sorted(int(s) for s in args.sizes.split(","))
    result: dict[str, Any] = {
        "benchmark": "memory-run",
        "machine": machine(),
        "audio_pool": args.audio_pool,
        "runs": [],
        "slope_kb_per_enrollment": None,
        "target_kb_per_enrollment": 0.1,
    }
    for n in sizes:

        def running(points: list[tuple[int, float]], n: int = n) -> None:
            """A size still running is in the file too: a run stopped midway keeps its curve."""
            result["running"] = {"enrollments": n, "trajectory": points}
            if args.out is not None and len(points) % 12 == 0:  # every minute
                write_json(args.out, result)

        result["runs"].append(await one_size(n, args.audio_pool, args.memray, running))
        result.pop("running", None)
        result["slope_kb_per_enrollment"] = slope_kb(result["runs"])
        result["machine_after"] = machine()["loadavg"]
        print(json.dumps(result["runs"][-1]), file=sys.stderr, flush=True)  # progress
        if args.out is not None:
            write_json(args.out, result)
    return result


def main() -> None:
    emit(asyncio.run(measure(parser().parse_args())))


if __name__ == "__main__":
    main()
