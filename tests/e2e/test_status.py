"""`enroller status` over a real queue directory: counts, holders, lease ages, progress."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakeclock import FakeClock
from tests.support import make_job_queue
from worker.cli import main
from worker.queue.jobqueue import JobQueue


@pytest.fixture
def busy_queue(tmp_path: Path) -> JobQueue:
    """2 waiting, 2 active (one with progress), 1 done, 1 failed, 1 report."""
    queue = make_job_queue(tmp_path / "q", lease_ttl=60.0, worker_id="worker-a")
    for name in ["a.json", "b.csv", "c.json", "d.json", "e.json", "f.json"]:
        (queue.paths.inbox / name).write_text(json.dumps(name))
    queue.scan()
    jobs = {}
    for candidate in queue.scan():
        if candidate.name in {"c.json", "d.json", "e.json", "f.json"}:
            job = queue.claim_sync(candidate)
            assert job is not None
            jobs[candidate.name] = job
    jobs["c.json"].progress_path.write_text(json.dumps({"done": 3, "total": 10}))
    queue.finish_sync(jobs["e.json"])
    queue.fail_sync(jobs["f.json"], ["bad"])
    (queue.paths.reports / "e-1234567890.report.json").write_text("{}")
    (queue.paths.inbox / ".hidden.json").write_text("x")
    return queue


def test_status_json(busy_queue: JobQueue, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--json", "--queue-dir", str(busy_queue.paths.root)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["counts"] == {"inbox": 2, "active": 2, "done": 1, "failed": 1, "reports": 1}
    by_file = {job["file"]: job for job in doc["active"]}
    assert set(by_file) == {"c.json", "d.json"}
    assert by_file["c.json"]["holder"] == "worker-a"
    assert by_file["c.json"]["progress"] == {"done": 3, "total": 10}
    assert by_file["d.json"]["progress"] is None
    assert 0 <= by_file["c.json"]["lease_age"] < 30 and not by_file["c.json"]["stale"]


def test_status_text(busy_queue: JobQueue, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--queue-dir", str(busy_queue.paths.root)]) == 0
    out = capsys.readouterr().out
    assert "inbox: 2  active: 2  done: 1  failed: 1  reports: 1" in out
    lines = {line.split()[1]: line for line in out.splitlines() if "worker-a" in line}
    assert "3/10" in lines["c.json"]
    assert lines["d.json"].rstrip().endswith("—")
    assert "(stale)" not in out


def test_status_marks_stale_leases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The holder's clock is a minute behind the wall: its lease was last renewed 60 s ago, a
    # lease `status` (on the wall clock) must call stale at once; no waiting for it to age.
    queue = make_job_queue(tmp_path / "q", FakeClock(time.time() - 60), lease_ttl=0.2)
    (queue.paths.inbox / "a.json").write_text("{}")
    queue.scan()
    assert queue.claim_sync(queue.scan()[0]) is not None
    args = ["status", "--queue-dir", str(queue.paths.root), "--lease-ttl", "0.2"]
    assert main(args) == 0
    assert "(stale)" in capsys.readouterr().out


def test_status_of_a_missing_queue_is_not_an_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "worker", "status", "--queue-dir", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "does not exist" in result.stdout
    assert "no active jobs" in result.stdout
    assert not (tmp_path / "nope").exists()  # status never creates folders
