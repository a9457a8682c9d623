"""Real worker processes sharing one queue directory: races, kill -9, crashes mid-claim."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakeclock import FakeClock
from tests.support import make_job_queue, wait_until
from worker.queue.lease import read_lease

HELPER = Path(__file__).with_name("queue_worker.py")


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HELPER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_racing_over_50_files_claim_each_exactly_once(tmp_path: Path) -> None:
    queue = make_job_queue(tmp_path / "q", FakeClock())
    names = {f"m{i:02d}.json" for i in range(50)}
    for name in names:
        (queue.paths.inbox / name).write_text(json.dumps({"n": name}))
    go = tmp_path / "go"
    procs = [spawn("race", str(queue.paths.root), str(go)) for _ in range(2)]
    for proc in procs:  # the barrier: both imported, set up and spinning on the go file
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n", proc.communicate(timeout=30)
    go.touch()
    claimed: list[set[str]] = []
    for proc in procs:
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        claimed.append({json.loads(line)["name"] for line in out.splitlines()})
    assert all(claimed), [len(c) for c in claimed]  # both raced: a real contest, not a relay
    assert claimed[0].isdisjoint(claimed[1])
    assert claimed[0] | claimed[1] == names
    active = {next((d / "manifest").iterdir()).name for d in queue.paths.active.iterdir()}
    assert active == names
    assert list(queue.paths.inbox.iterdir()) == []


def heartbeat_of(job_dir: Path) -> float:
    """The holder's last renewal, as it wrote it (epoch seconds)."""
    _, lease = read_lease(job_dir)
    assert lease is not None
    return lease.heartbeat.timestamp()


def test_kill_9_of_a_holder_then_takeover_after_ttl(tmp_path: Path) -> None:
    # The survivor judges staleness on its own FakeClock, set from the holder's heartbeats:
    # what is stale is decided by arithmetic on what the holder wrote, not by sleeping.
    clock = FakeClock()
    queue = make_job_queue(tmp_path / "q", clock, lease_ttl=1.0, worker_id="survivor")
    (queue.paths.inbox / "a.json").write_text('{"v": 1}')
    proc = spawn("hold", str(queue.paths.root), "1.0")
    try:
        assert proc.stdout is not None
        job_id = json.loads(proc.stdout.readline())["job_id"]
        job_dir = queue.paths.active / job_id
        claimed_at = heartbeat_of(job_dir)
        # The holder keeps renewing for longer than the ttl: only its heartbeat holds the job.

        def renewed_past_the_ttl() -> bool:
            assert proc.poll() is None, proc.stderr  # the holder must still be alive
            return heartbeat_of(job_dir) >= claimed_at + 1.5

        wait_until(renewed_past_the_ttl, 60, "the holder renewing past its ttl")
        clock.now = heartbeat_of(job_dir) + 0.5
        assert queue.recover_stale_sync() == []  # renewed half a ttl ago
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
    last = heartbeat_of(job_dir)  # the dead holder's final word
    clock.now = last + 0.99
    assert queue.recover_stale_sync() == []  # not yet stale
    clock.now = last + 1.01
    taken = queue.recover_stale_sync()
    assert [j.job_id for j in taken] == [job_id]
    assert taken[0].resumed
    assert taken[0].manifest_path.read_text() == '{"v": 1}'
    queue.finish_sync(taken[0])
    assert (queue.paths.done / f"{job_id}.json").exists()


@pytest.mark.parametrize("step", ["staged", "claimed", "hashed", "settled"])
def test_process_dying_at_each_claim_step_loses_nothing(tmp_path: Path, step: str) -> None:
    clock = FakeClock()
    queue = make_job_queue(tmp_path / "q", clock, lease_ttl=0.5)
    (queue.paths.inbox / "a.json").write_text('{"v": 7}')
    proc = spawn("crash", str(queue.paths.root), step)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 9, err
    clock.now = time.time() + 0.6  # the dead claimer's lease (ttl 0.5 s) is stale now
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
