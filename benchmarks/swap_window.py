"""How long a customer is without a computed voiceprint while `existing: overwrite` swaps it.

    .venv/bin/python benchmarks/swap_window.py [--identities 40] [--latency-ms 0 20]

For each emulator latency and each path (the API renames voiceprints; it only deletes them),
`--identities` customers are enrolled, then enrolled again from new recordings with
`existing: overwrite`. The worker logs each swap's window (`swap_window_closed`: from the
request that takes the old voiceprint away to the answer that puts the new one in place);
this prints their median, 95th percentile and maximum, with the requests and credits of the
overwrite job per identity. In-process (emulator and worker in one event loop), like the e2e
tests: the figures are the worker's own, not the network's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from structlog.testing import capture_logs

from benchmarks.harness import emit, machine
from tests.audiogen import write_audio
from tests.emulator_harness import running_emulator
from tests.support import MODEL, drop, job_manifest, make_settings, report_of, run_once


async def one(identities: int, latency_ms: float, rename: bool) -> dict[str, Any]:
    ids = [f"sw-{i}" for i in range(identities)]
    with tempfile.TemporaryDirectory() as tmp:
        queue = Path(tmp) / "queue"
        for n, name in enumerate(ids):
            write_audio(queue / "audio" / f"{name}.wav", voice_s=5.0 + n * 0.01, samplerate=8000)
            write_audio(
                queue / "audio" / f"{name}-new.wav", voice_s=6.0 + n * 0.01, samplerate=8000
            )
        options = {"latency_ms": latency_ms, "no_voiceprint_rename": not rename}
        async with running_emulator(**options) as emu:
            settings = make_settings(queue, emu.base_url)
            drop(queue, "first.json", job_manifest(ids, MODEL))
            assert await run_once(settings) == 0
            again = {
                "existing": "overwrite",
                "enrollments": [{"identity": i, "audios": [f"{i}-new.wav"]} for i in ids],
            }
            drop(queue, "again.json", again)
            with capture_logs() as logs:
                assert await run_once(settings) == 0
        report = report_of(queue, "again")
    windows = sorted(e["seconds"] for e in logs if e["event"] == "swap_window_closed")
    assert report["counts"]["replaced"] == identities == len(windows)
    return {
        "path": "rename" if rename else "delete",
        "latency_ms": latency_ms,
        "identities": identities,
        "window_s": {
            "median": round(statistics.median(windows), 4),
            "p95": round(windows[int(0.95 * (len(windows) - 1))], 4),
            "max": round(windows[-1], 4),
        },
        "requests_per_identity": round(report["requests"] / identities, 2),
        "credits_per_identity": report["credits_spent"] / identities,
    }


async def main(identities: int, latencies: list[float]) -> dict[str, Any]:
    runs = [
        await one(n, latency, rename)
        for n in (1, identities)  # alone, then many at once sharing the rate budget
        for latency in latencies
        for rename in (True, False)
    ]
    return {"benchmark": "swap_window", "machine": machine(), "runs": runs}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--identities", type=int, default=40)
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0.0, 20.0])
    args = parser.parse_args()
    with contextlib.redirect_stdout(sys.stderr):  # the worker's log lines; the JSON alone out
        result = asyncio.run(main(args.identities, args.latency_ms))
    emit(result)
