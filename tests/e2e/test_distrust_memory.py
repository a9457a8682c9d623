"""Issue 27 point 1, measured: a worker process's peak memory stays flat whatever size of
answer the server sends. `enroller run --once` runs as a child behind the misbehaving proxy
(tests/misbehaving.py); its peak RSS is `ru_maxrss` from `os.wait4` (that child alone).

Bound each test states: the peak with the misbehaving answer is within `SLACK_MB` of the same
run's peak with honest answers. Without the cap, a 200 MB body or a 1 GiB gzip bomb would add
at least that much (issue 27 measured 494 MB and over 1 GiB).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from tests.emulator_harness import running_emulator
from tests.misbehaving import Act, gzip_bomb, huge_body, misbehaving
from tests.support import (
    MODEL,
    WORKER,
    assert_no_crash,
    drop,
    job_manifest,
    make_queue,
    report_of,
    worker_env,
)

pytestmark = pytest.mark.scenario

IDS = ["ann", "bob"]
CAP = 4 * 1024 * 1024  # ENROLLER_MAX_RESPONSE_BYTES, the default
SLACK_MB = 40.0  # allocator noise and one cap's worth of bytes, far below what is sent


def run_measured(env: dict[str, str], log: Path) -> tuple[int, float]:
    """`enroller run --once` to its exit: (exit code, peak RSS in MB of that process)."""
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [*WORKER, "run", "--once"], env=env, stdout=subprocess.DEVNULL, stderr=err
        )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024  # KiB on Linux


async def peak_of(tmp_path: Path, name: str, rules: list[tuple[str, str, Act]]) -> dict[str, Any]:
    queue = make_queue(tmp_path / name, IDS)
    drop(queue, "batch.json", job_manifest(IDS, MODEL))
    log = tmp_path / f"{name}.log"
    async with running_emulator() as emu, misbehaving(emu.root_url) as proxy:
        for method, path, act in rules:
            proxy.on(method, path, act)
        env = worker_env(queue, proxy.base_url, ENROLLER_MAX_RESPONSE_BYTES=str(CAP))
        code, peak = await anyio.to_thread.run_sync(run_measured, env, log)
    assert_no_crash(log)
    return {"code": code, "peak_mb": peak, "report": report_of(queue, "batch")}


@pytest.mark.parametrize(
    ("case", "rules"),
    [
        # A 200 MB answer to every compute (the call took effect: settled by a read).
        (
            "200 MB compute answers",
            [("POST", r":compute$", huge_body(200 << 20, forward_first=True))],
        ),
        # A 1 GiB gzip bomb (about 1 MB on the wire) as the usage records list.
        ("1 GiB gzip bomb as a list", [("GET", r"/records/voiceprint$", gzip_bomb(1 << 30))]),
    ],
)
async def test_memory_stays_flat_whatever_the_answer_size(
    tmp_path: Path, case: str, rules: list[tuple[str, str, Act]]
) -> None:
    honest = await peak_of(tmp_path, "honest", [])
    hostile = await peak_of(tmp_path, "hostile", rules)
    print(f"{case}: peak RSS {hostile['peak_mb']:.1f} MB, honest {honest['peak_mb']:.1f} MB")
    assert honest["code"] == 0
    assert hostile["code"] == 0  # handled: the compute settled by a read, the list refused
    report = hostile["report"]
    refused = f"answer larger than {CAP} bytes"
    if "compute" in case:
        assert {r["validated_by"] for r in report["enrollments"]} == {"read after unknown outcome"}
    else:
        assert refused in report["usage"]["error"]
    assert hostile["peak_mb"] <= honest["peak_mb"] + SLACK_MB, (hostile, honest)
