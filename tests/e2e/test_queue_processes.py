"""Real worker processes sharing one queue directory: races, kill -9, crashes mid-claim."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from worker.queue import JobQueue
from worker.settings import Settings

HELPER = Path(__file__).with_name("queue_worker.py")


def make_queue(root: Path, **overrides: Any) -> JobQueue:
    values: dict[str, Any] = {"queue_dir": root, "min_age": 0.0, "lease_ttl": 0.5}
    values.update(overrides)
    queue = JobQueue(Settings(**values))
    queue.setup()
    return queue


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HELPER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_racing_over_50_files_claim_each_exactly_once(tmp_path: Path) -> None:
    queue = make_queue(tmp_path / "q")
    names = {f"m{i:02d}.json" for i in range(50)}
    for name in names:
        (queue.paths.inbox / name).write_text(json.dumps({"n": name}))
    go = tmp_path / "go"
    procs = [spawn("race", str(queue.paths.root), str(go)) for _ in range(2)]
    time.sleep(0.5)  # both imported and waiting: the race starts at one instant
    go.touch()
    claimed: list[set[str]] = []
    for proc in procs:
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        claimed.append({json.loads(line)["name"] for line in out.splitlines()})
    assert claimed[0].isdisjoint(claimed[1])
    assert claimed[0] | claimed[1] == names
    active = {next((d / "manifest").iterdir()).name for d in queue.paths.active.iterdir()}
    assert active == names
    assert list(queue.paths.inbox.iterdir()) == []


def test_kill_9_of_a_holder_then_takeover_after_ttl(tmp_path: Path) -> None:
    queue = make_queue(tmp_path / "q", lease_ttl=1.0, worker_id="survivor")
    (queue.paths.inbox / "a.json").write_text('{"v": 1}')
    proc = spawn("hold", str(queue.paths.root), "1.0")
    try:
        assert proc.stdout is not None
        job_id = json.loads(proc.stdout.readline())["job_id"]
        time.sleep(1.5)  # longer than the ttl: only the heartbeat keeps it held
        assert queue.recover_stale_sync() == []
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
    assert queue.recover_stale_sync() == []  # not yet stale
    deadline = time.monotonic() + 5
    taken = []
    while not taken and time.monotonic() < deadline:
        time.sleep(0.1)
        taken = queue.recover_stale_sync()
    assert [j.job_id for j in taken] == [job_id]
    assert taken[0].resumed
    assert taken[0].manifest_path.read_text() == '{"v": 1}'
    queue.finish_sync(taken[0])
    assert (queue.paths.done / f"{job_id}.json").exists()


@pytest.mark.parametrize("step", ["staged", "claimed", "hashed", "settled"])
def test_process_dying_at_each_claim_step_loses_nothing(tmp_path: Path, step: str) -> None:
    queue = make_queue(tmp_path / "q", lease_ttl=0.5)
    (queue.paths.inbox / "a.json").write_text('{"v": 7}')
    proc = spawn("crash", str(queue.paths.root), step)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 9, err
    time.sleep(0.6)
    jobs = queue.recover_stale_sync()
    for _ in range(2):
        for candidate in queue.scan():
            job = queue.claim_sync(candidate)
            if job is not None:
                jobs.append(job)
    assert len(jobs) == 1
    assert jobs[0].manifest_path.read_text() == '{"v": 7}'
    assert [p.name for p in queue.paths.active.iterdir()] == [jobs[0].job_id]
    assert queue.recover_stale_sync() == []  # and nobody else can take it now
