"""Issue 30 point 6: a stop says which jobs were interrupted and where, and that they resume;
the next start says where it resumes; the report says the run was interrupted.

Real `enroller run` processes (SIGTERM is the stop an operator sends); waits are on the
job's own progress file, never on time.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.emulator_harness import running_emulator
from tests.support import (
    MODEL,
    drop,
    job_manifest,
    make_queue,
    report_of,
    run_worker,
    start_worker,
    wait_for,
    worker_env,
)
from worker.cli import main


def events(log: Path) -> list[dict[str, Any]]:
    lines = log.read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


@pytest.mark.scenario  # two real workers, a few seconds
@pytest.mark.timeout(120)
async def test_a_stop_and_a_restart_say_where_the_job_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = [f"cut-{i:02d}" for i in range(20)]
    queue = make_queue(tmp_path / "queue", ids)
    drop(queue, "cut.json", job_manifest(ids, MODEL))
    async with running_emulator(latency_ms=100) as emu:
        env = worker_env(queue, emu.base_url, ENROLLER_MAX_ENROLLMENTS="1")
        first = tmp_path / "first.log"
        worker = await start_worker(env, first, once=False)

        def some_done() -> bool:
            for progress in (queue / "active").glob("*/progress.json"):
                doc = json.loads(progress.read_text())
                if 0 < doc["done"] < doc["total"]:
                    return True
            return False

        await wait_for(some_done, 60, "a few enrollments done, not all")
        worker.send_signal(signal.SIGTERM)
        assert await worker.wait() == 0
        told = events(first)
        [stop] = [e for e in told if e["event"] == "job_interrupted"]
        assert stop["level"] == "warning"
        job_id = stop["message"].split()[0]
        assert stop["message"].startswith(f"{job_id} stopped at ")
        assert stop["message"].endswith(
            " of 20 enrollments; it resumes from its journal at the next start"
        )
        [summary] = [e for e in told if e["event"] == "worker_stopped_with_jobs_to_resume"]
        assert summary["jobs"] == [job_id]

        second = tmp_path / "second.log"
        assert await run_worker(env, second) == 0
    [resume] = [e for e in events(second) if e["event"] == "job_resuming"]
    assert resume["message"].startswith(f"resuming {job_id} at ")
    assert " of 20 enrollments (" in resume["message"]
    report = report_of(queue, "cut")
    assert report["interrupted"] is True and report["counts"]["enrolled"] == 20
    capsys.readouterr()
    assert main(["report", job_id, "--queue-dir", str(queue)]) == 0
    out = capsys.readouterr().out
    assert "  interrupted: an earlier start was cut (a stop, a crash); this run resumed it" in out
