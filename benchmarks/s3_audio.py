"""S3 audio (issue 29): peak memory of one large download, and the download + enrollment rate.

    .venv/bin/python benchmarks/s3_audio.py [--object-mb 200] [--enrollments 200]

Both against SeaweedFS (`weed mini`, tests/s3_harness.py) on the loopback, on this machine:

1. Memory: a child process makes its S3 client (a HEAD), resets its peak RSS
   (`/proc/self/clear_refs`), downloads one object through `worker.objects.store.S3Store`
   (the worker's own download: streamed, hashed, fsynced) and reports its VmHWM: the peak
   during the download alone; once for a 1 MiB object, once for `--object-mb`. Flat means
   the two growths differ by about the chunk size, not by the object. The child's whole-life
   peak (`ru_maxrss`, start-up included) is given too.
2. Rate: `enroller run --once` as a child on a manifest of `--enrollments` enrollments, one
   small distinct 16 kHz WAV each, against the emulator in its own process (latency 0, no rate
   limit), once with the audio in S3 (`s3://…`) and once with the same files on local disk:
   wall time, enrollments/s, and the S3 run's bytes downloaded (SeaweedFS's own counter).

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import (
    MODEL,
    drop_manifest,
    emit,
    identity_of,
    machine,
    read_report,
    run_worker_once,
    stderr_tail,
    worker_env,
    write_distinct_audio,
)

from tests.emulator_harness import emulator_process
from tests.s3_harness import ACCESS_KEY, REGION, SECRET_KEY, S3Server, running_s3

BUCKET = "bench-audio"
WORKER_RATE = 100_000  # "unlimited": the governor never paces

_CHILD = """
import sys, tempfile, time
from pathlib import Path
from worker.objects.store import S3Store
from worker.objects.uri import S3Uri


def status_kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])


endpoint, access, secret, region, bucket, key = sys.argv[1:7]
store = S3Store(endpoint_url=endpoint, access_key=access, secret_key=secret, region=region)
uri = S3Uri(bucket, key)
store.head(uri)  # the client made and warm: its start-up is not the download's
Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS now (Linux)
before = status_kib("VmHWM")
with tempfile.TemporaryDirectory() as tmp:
    started = time.monotonic()
    got = store.download(uri, Path(tmp), 1 << 40)
    took = time.monotonic() - started
    print(got.size, took, before, status_kib("VmHWM"))
store.close()
"""


def download_peak(server: S3Server, key: str) -> dict[str, Any]:
    """One download in a fresh child: its peak RSS (KiB from wait4), the download's own time
    (GET, write, hash, fsync, rename; the client already made) and the child's wall time."""
    argv = [sys.executable, "-c", _CHILD, server.endpoint, ACCESS_KEY, SECRET_KEY, REGION]
    started = time.monotonic()
    proc = subprocess.Popen([*argv, BUCKET, key], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    with proc.stdout:
        out = proc.stdout.read().decode().split()  # to its end: the child has finished
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or not out:
        raise RuntimeError(f"download child failed: {status}")
    size, download_s, before_kib, peak_kib = int(out[0]), float(out[1]), int(out[2]), int(out[3])
    return {
        "bytes": size,
        "rss_before_download_mb": round(before_kib / 1024, 1),
        "peak_rss_during_download_mb": round(peak_kib / 1024, 1),
        "download_growth_mb": round((peak_kib - before_kib) / 1024, 1),
        "child_peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "child_wall_s": round(wall, 2),
        "download_s": round(download_s, 2),
        "download_mib_per_s": round(size / 2**20 / download_s, 1),
    }


def memory(server: S3Server, work: Path, object_mb: int) -> dict[str, Any]:
    big = work / "big.bin"
    with big.open("wb") as fh:
        for _ in range(object_mb):
            fh.write(os.urandom(1 << 20))
    server.put(BUCKET, "mem/small.bin", os.urandom(1 << 20))
    server.put(BUCKET, "mem/big.bin", big)
    big.unlink()
    small = download_peak(server, "mem/small.bin")
    large = download_peak(server, "mem/big.bin")
    return {
        "small_1mib": small,
        f"large_{object_mb}mib": large,
        "growth_difference_mb": round(large["download_growth_mb"] - small["download_growth_mb"], 1),
    }


async def one_run(
    queue: Path, base_url: str, document: dict[str, Any], extra_env: dict[str, str]
) -> dict[str, Any]:
    env = worker_env(queue, base_url, WORKER_RATE, max_enrollments=64)
    env.update(extra_env)
    drop_manifest(queue, "bench.json", document)
    run = await asyncio.to_thread(run_worker_once, env, queue.parent, queue.parent / "err.log")
    report = read_report(queue)
    if report is None:
        raise RuntimeError(stderr_tail(queue.parent / "err.log"))
    counts = report.get("counts", {})
    n = len(document["enrollments"])
    return {
        "returncode": run.returncode,
        "wall_s": round(run.wall_s, 2),
        "enrollments_per_s": round(n / run.wall_s, 1),
        "peak_rss_mb": run.peak_rss_mb,
        "counts": counts,
    }


async def rate(server: S3Server, work: Path, n: int) -> dict[str, Any]:
    audio = work / "audio-src"
    names = write_distinct_audio(audio, n)
    total = 0
    for name in names:
        server.put(BUCKET, f"rate/{name}", audio / name)
        total += (audio / name).stat().st_size
    out: dict[str, Any] = {"enrollments": n, "audio_bytes": total}
    for kind in ("s3", "local"):
        queue = work / kind / "queue"
        queue.mkdir(parents=True)
        if kind == "local":
            os.rename(audio, queue / "audio")
        where = f"s3://{BUCKET}/rate/" if kind == "s3" else ""
        rows = [{"identity": identity_of(a), "audios": [where + a]} for a in names]
        document = {"model": MODEL, "enrollments": rows}
        sent = server.sent_bytes(BUCKET)
        async with emulator_process(latency_ms=0, rate_limit=0) as emulator:
            out[kind] = await one_run(queue, emulator.base_url, document, server.env())
        if kind == "s3":
            out[kind]["downloaded_bytes"] = server.sent_bytes(BUCKET) - sent
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--object-mb", type=int, default=200)
    parser.add_argument("--enrollments", type=int, default=200)
    parser.add_argument("--skip-rate", action="store_true", help="the memory figures only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "s3").mkdir()
        with running_s3(work / "s3") as server:
            server.bucket(BUCKET)
            result: dict[str, Any] = {"benchmark": "s3_audio", "machine": machine()}
            result["memory"] = memory(server, work, args.object_mb)
            if not args.skip_rate:
                result["rate"] = await rate(server, work / "rate", args.enrollments)
    emit(result)


if __name__ == "__main__":
    asyncio.run(main())
