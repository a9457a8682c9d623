"""Issue 30 point 5: the operator can see what is happening, as `status`, `report` and the
queue folders show it.

A file that is not a manifest goes to failed/ with what to do; `status` tells the workers (by
their heartbeats), the API's state, each job's steps, rate and ETA, and the last finished jobs;
`enroller report JOB` prints a finished job's summary and its files.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest

from tests.emulator_harness import EmulatorHandle, running_emulator
from tests.support import (
    MODEL,
    drop,
    job_manifest,
    make_queue,
    make_settings,
    run_once,
    start_worker,
    wait_for,
    worker_env,
)
from worker.cli import main


async def test_a_spreadsheet_in_the_inbox_goes_to_failed_with_what_to_do(
    tmp_path: Path, emulator: EmulatorHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = ["ann", "bob"]
    queue = make_queue(tmp_path / "queue", ids)
    drop(queue, "customers.xlsx", b"PK\x03\x04 not a manifest")
    drop(queue, "batch.json", job_manifest(ids, MODEL))
    assert await run_once(make_settings(queue, emulator.base_url)) == 0
    capsys.readouterr()  # the worker's own log lines

    assert list((queue / "inbox").iterdir()) == []
    [moved] = (queue / "failed").glob("customers-*.xlsx")
    error = json.loads(moved.with_suffix(".error.json").read_text())
    assert error["problems"][0]["reason"] == (
        "xlsx is not supported: save it as CSV UTF-8 (a .csv file) and drop that"
    )

    assert main(["status", "--queue-dir", str(queue)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "inbox: 0  active: 0  done: 1  failed: 1  reports: 1" in out
    assert "workers: none running (no heartbeat in the queue)" in out
    finished = out[out.index("last finished:") + 1]
    assert finished.startswith("  batch-") and finished.endswith("enrolled 2")

    assert main(["report", "batch", "--queue-dir", str(queue)]) == 0
    report = capsys.readouterr().out.splitlines()
    assert report[0].startswith("job batch-") and report[0].endswith("(manifest batch.json)")
    assert "  2 enrollments: 2 enrolled" in report
    assert any(line.startswith("  report    ") and "/reports/batch-" in line for line in report)
    assert any(line.startswith("  manifest  ") and "/done/batch-" in line for line in report)

    assert main(["report", "customers", "--queue-dir", str(queue)]) == 0
    told = capsys.readouterr().out
    assert "could not run; it is in failed/" in told and "save it as CSV UTF-8" in told
    assert main(["report", "nothing-like-it", "--queue-dir", str(queue)]) == 1


@pytest.mark.scenario  # a real worker for a few seconds (a heartbeat every 5 s)
@pytest.mark.timeout(90)
async def test_status_shows_the_worker_the_api_and_a_job_s_steps_rate_and_eta(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = [f"slow-{i:02d}" for i in range(30)]
    queue = make_queue(tmp_path / "queue", ids)
    drop(queue, "slow.json", job_manifest(ids, MODEL))
    async with running_emulator(latency_ms=150) as emu:
        env = worker_env(queue, emu.base_url, ENROLLER_MAX_ENROLLMENTS="1")
        worker = await start_worker(env, tmp_path / "worker.log", once=False)
        try:

            def paced() -> bool:
                beats = [json.loads(p.read_text()) for p in (queue / ".health").glob("*.json")]
                if not any((b.get("api") or {}).get("state") == "reachable" for b in beats):
                    return False  # the next heartbeat (every 5 s) tells the API's state
                for progress in (queue / "active").glob("*/progress.json"):
                    doc = json.loads(progress.read_text())
                    if doc.get("per_second") and doc["done"] < doc["total"]:
                        return True
                return False

            await wait_for(paced, 60, "a job with a rate, not finished yet")
            assert main(["status", "--queue-dir", str(queue)]) == 0
        finally:
            worker.send_signal(signal.SIGTERM)
            await worker.wait()
    out = capsys.readouterr().out.splitlines()
    [worker_line] = [line for line in out if line.startswith("worker ")]
    # jobs: as the last heartbeat (every 5 s) found them
    assert re.fullmatch(
        r"worker \S+ \(running, [01] jobs\): healthy, heartbeat [\d.]+ s ago", worker_line
    )
    assert "api: reachable" in out
    header = next(line for line in out if line.startswith("JOB"))
    assert header.split() == ["JOB", "FILE", "HOLDER", "LEASE", "AGE", "PROGRESS", "RATE", "ETA"]
    [row] = [line for line in out if line.startswith("slow-")]
    assert "/30 (" in row and "audios sent" in row and "computes)" in row
    assert row.split()[-2].endswith("/min") and row.split()[-1].endswith("s")
