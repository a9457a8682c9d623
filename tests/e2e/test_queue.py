"""The queue directory on a real filesystem, in one process: layout, claim, lease, finish, fail."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
import structlog

from tests.fakeclock import FakeClock
from tests.support import drop, make_job_queue, wait_for
from tests.unprivileged import rerun_unprivileged
from worker.queue.discover import Candidate
from worker.queue.jobqueue import JobQueue
from worker.queue.lease import LeaseLost, read_lease
from worker.queue.paths import ClaimedJob, QueueSetupError, setup_folders
from worker.queue.rules import job_id_for


def ready(queue: JobQueue) -> list[str]:
    queue.scan()
    return [c.name for c in queue.scan()]


def claim_one(queue: JobQueue) -> ClaimedJob:
    candidates = queue.scan() or queue.scan()
    job = queue.claim_sync(candidates[0])
    assert job is not None
    return job


def test_setup_creates_the_five_folders(tmp_path: Path) -> None:
    make_job_queue(tmp_path / "q")
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == [
        "active",
        "done",
        "failed",
        "inbox",
        "reports",
    ]
    assert list((tmp_path / "q" / "inbox").iterdir()) == []  # the probe is gone


def test_setup_reports_an_unwritable_folder(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if rerun_unprivileged(request):
        return  # root ignores mode bits: the test just ran as uid 1000 in a user namespace
    queue = make_job_queue(tmp_path)
    queue.paths.done.chmod(0o500)
    try:
        with pytest.raises(QueueSetupError, match=r"done is not writable"):
            queue.setup()
    finally:
        queue.paths.done.chmod(0o700)


def test_setup_reports_exdev_clearly(tmp_path: Path) -> None:
    queue = make_job_queue(tmp_path)

    def rename(src: Any, dst: Any) -> None:
        if "failed" in str(dst):
            raise OSError(18, "Invalid cross-device link")
        os.rename(src, dst)

    with pytest.raises(QueueSetupError, match=r"different filesystems or mounts \(EXDEV\)"):
        setup_folders(queue.paths, rename=rename)


def test_dropper_contract_ignores_dot_tmp_part_and_other(tmp_path: Path) -> None:
    queue = make_job_queue(tmp_path)
    for name in [".a.json", "b.json.tmp", "c.csv.part", "d.txt", "e.json", "f.CSV"]:
        drop(queue, name)
    (queue.paths.inbox / "sub.json").mkdir()
    (queue.paths.inbox / "link.json").symlink_to(queue.paths.inbox / "e.json")
    with structlog.testing.capture_logs() as logs:
        assert ready(queue) == ["e.json", "f.CSV"]
        assert ready(queue) == ["e.json", "f.CSV"]
    skipped = sorted(e["file"] for e in logs if e["event"] == "queue_file_skipped")
    assert skipped == ["link.json", "sub.json"]  # once each, not once per scan
    # Not a manifest: moved to failed/ with the reason (tests/e2e/test_operator_sees.py).
    assert [e["file"] for e in logs if e["event"] == "inbox_file_refused"] == ["d.txt"]
    assert not (queue.paths.inbox / "d.txt").exists()


def test_min_age_holds_back_a_fresh_file(tmp_path: Path) -> None:
    clock = FakeClock()
    queue = make_job_queue(tmp_path, clock, min_age=0.3)
    drop(queue, "a.json")
    assert ready(queue) == []
    clock.advance(0.29)
    assert queue.scan() == []  # unchanged, but not yet min_age old
    clock.advance(0.02)
    assert [c.name for c in queue.scan()] == ["a.json"]


def test_claim_moves_the_file_into_a_leased_job_dir(tmp_path: Path) -> None:
    queue = make_job_queue(tmp_path, worker_id="w-1")
    content = '{"identity": "alice", "audios": ["a.wav"]}'
    drop(queue, "alice.json", content)
    job = claim_one(queue)
    sha = hashlib.sha256(content.encode()).hexdigest()
    assert job.job_id == job_id_for("alice.json", sha) == f"alice-{sha[:10]}"
    assert job.dir == queue.paths.active / job.job_id
    assert job.manifest_path.read_text("utf-8") == content
    assert not (queue.paths.inbox / "alice.json").exists()
    lease = json.loads(job.lease_path.read_text("utf-8"))
    assert lease["holder"] == "w-1" and lease["pid"] == os.getpid() and lease["generation"] == 0
    assert job.journal_path.parent == job.dir and not job.resumed
    assert [p.name for p in queue.paths.active.iterdir()] == [job.job_id]  # no staging left


def test_losing_the_rename_is_not_an_error(tmp_path: Path) -> None:
    queue = make_job_queue(tmp_path)
    path = drop(queue, "a.json")
    candidate = Candidate(path, 1, 0.0)
    path.unlink()  # another worker took it
    assert queue.claim_sync(candidate) is None
    assert list(queue.paths.active.iterdir()) == []


def test_same_name_new_content_is_a_new_job(tmp_path: Path) -> None:
    queue = make_job_queue(tmp_path)
    drop(queue, "a.json", '{"v": 1}')
    first = claim_one(queue)
    drop(queue, "a.json", '{"v": 2}')
    second = claim_one(queue)
    assert first.job_id != second.job_id
    assert first.job_id.startswith("a-") and second.job_id.startswith("a-")


def test_duplicate_of_an_active_job_goes_to_done(tmp_path: Path) -> None:
    queue = make_job_queue(tmp_path)
    drop(queue, "a.json", '{"v": 1}')
    first = claim_one(queue)
    drop(queue, "a.json", '{"v": 1}')
    candidates = queue.scan() or queue.scan()
    assert queue.claim_sync(candidates[0]) is None
    assert (queue.paths.done / f"{first.job_id}.json").exists()
    assert first.manifest_path.exists()
    assert [p.name for p in queue.paths.active.iterdir()] == [first.job_id]


def test_finish_moves_to_done_and_clears_the_job(tmp_path: Path) -> None:
    queue = make_job_queue(tmp_path)
    drop(queue, "batch.csv", "identity,audio\nalice,a.wav\n")
    job = claim_one(queue)
    job.journal_path.write_text("{}\n")
    dest = queue.finish_sync(job)
    assert dest == queue.paths.done / f"{job.job_id}.csv"
    assert dest.read_text() == "identity,audio\nalice,a.wav\n"
    assert list(queue.paths.active.iterdir()) == []


def test_fail_writes_error_json_beside_the_manifest(tmp_path: Path) -> None:
    queue = make_job_queue(tmp_path)
    drop(queue, "bad.json", "{not json")
    job = claim_one(queue)
    dest = queue.fail_sync(job, ["bad.json: line 1: not valid JSON"])
    assert dest == queue.paths.failed / f"{job.job_id}.json"
    assert dest.read_text() == "{not json"
    error = json.loads((queue.paths.failed / f"{job.job_id}.error.json").read_text("utf-8"))
    assert error["job_id"] == job.job_id and error["file"] == "bad.json"
    assert error["problems"] == ["bad.json: line 1: not valid JSON"]
    assert error["failed_at"].endswith("+00:00")
    assert list(queue.paths.active.iterdir()) == []


def test_report_paths(tmp_path: Path) -> None:
    paths = make_job_queue(tmp_path).paths.report_paths("a-0123456789")
    assert paths.report == tmp_path / "reports" / "a-0123456789.report.json"
    assert paths.failures == tmp_path / "reports" / "a-0123456789.failures.csv"
    assert paths.retry == tmp_path / "reports" / "a-0123456789.retry.json"


def test_fresh_lease_is_not_taken_stale_one_is(tmp_path: Path) -> None:
    clock = FakeClock()
    mine = make_job_queue(tmp_path, clock, worker_id="a")
    other = make_job_queue(tmp_path, clock, worker_id="b")
    drop(mine, "a.json")
    job = claim_one(mine)
    assert other.recover_stale_sync() == []
    clock.advance(0.3)
    mine.renew(job)
    clock.advance(0.49)
    assert other.recover_stale_sync() == []  # renewed 0.49 s ago, ttl 0.5 s
    clock.advance(0.02)
    taken = other.recover_stale_sync()
    assert [t.job_id for t in taken] == [job.job_id]
    assert taken[0].resumed and taken[0].generation == 1
    assert taken[0].manifest_path.exists()
    with pytest.raises(LeaseLost, match=r"lease taken over \(generation 1\)"):
        mine.renew(job)
    with pytest.raises(LeaseLost, match=r"lease taken over \(generation 1\)"):
        mine.finish_sync(job)
    other.renew(taken[0])
    assert sorted(p.name for p in job.dir.iterdir()) == ["lease.1.json", "manifest"]


def test_two_takers_of_one_stale_lease_one_wins(tmp_path: Path) -> None:
    clock = FakeClock()
    queue = make_job_queue(tmp_path, clock)
    drop(queue, "a.json")
    claim_one(queue)
    clock.advance(0.6)
    takers = [make_job_queue(tmp_path, clock, worker_id=f"t{i}") for i in range(2)]
    # Both have read the stale lease; only one can create the next generation.
    job_dir = next(queue.paths.active.iterdir())
    assert takers[0].leases.try_acquire(job_dir, 1, "x") is True
    assert takers[1].leases.try_acquire(job_dir, 1, "y") is False
    assert takers[1].recover_stale_sync() == []  # generation 1 is fresh


def test_released_lease_is_taken_over_at_once(tmp_path: Path) -> None:
    first = make_job_queue(tmp_path, lease_ttl=60)
    drop(first, "a.json")
    job = first.claim_sync((first.scan() or first.scan())[0])
    assert job is not None
    second = make_job_queue(tmp_path, lease_ttl=60)
    assert second.recover_stale_sync() == []
    first.release(job)
    assert [j.job_id for j in second.recover_stale_sync()] == [job.job_id]


def test_restarted_worker_resumes_its_own_job(tmp_path: Path) -> None:
    clock = FakeClock()
    before = make_job_queue(tmp_path, clock, worker_id="same")
    drop(before, "a.json")
    job = claim_one(before)
    job.journal_path.write_text('{"kind": "x"}\n')
    after = make_job_queue(tmp_path, clock, worker_id="same")
    assert after.recover_stale_sync() == []  # its lease is fresh: it may still be alive
    clock.advance(0.6)
    resumed = after.recover_stale_sync()
    assert [j.job_id for j in resumed] == [job.job_id]
    assert resumed[0].journal_path.read_text() == '{"kind": "x"}\n'


async def test_heartbeat_keeps_the_lease_and_raises_when_lost(tmp_path: Path) -> None:
    import anyio

    clock = FakeClock()
    queue = make_job_queue(tmp_path, clock, lease_ttl=0.3)
    drop(queue, "a.json")
    job = claim_one(queue)
    other = make_job_queue(tmp_path, clock, lease_ttl=0.3)
    clock.advance(10)  # the lease written at claim time is long stale by now...
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(queue.heartbeat, job, 0.01)
            # ...until the heartbeat renews it on this clock (another writer: poll the file).
            renewed = lambda: read_lease(job.dir)[1].heartbeat.timestamp() == clock.now  # noqa: E731
            await wait_for(renewed, 30, "the heartbeat renewing the lease", step=0.01)
            tg.cancel_scope.cancel()
    assert other.recover_stale_sync() == []  # kept fresh for longer than ttl
    queue.release(job)
    assert len(other.recover_stale_sync()) == 1
    with pytest.raises(LeaseLost, match=r"lease taken over \(generation 1\)"):
        await queue.heartbeat(job, interval=0.01)


@pytest.mark.parametrize("step", ["staged", "claimed", "hashed", "settled"])
def test_crash_at_every_claim_step_is_recovered(tmp_path: Path, step: str) -> None:
    class Crash(BaseException):
        pass

    def hook(at: str) -> None:
        if at == step:
            raise Crash(f"died at {at}")

    clock = FakeClock()
    queue = make_job_queue(tmp_path, clock, lease_ttl=0.3, crash_hook=hook)
    drop(queue, "a.json", '{"v": 42}')
    candidates = queue.scan() or queue.scan()
    with pytest.raises(Crash, match=rf"^died at {step}$"):
        queue.claim_sync(candidates[0])

    survivor = make_job_queue(tmp_path, clock, lease_ttl=0.3)
    assert survivor.recover_stale_sync() == []  # the dead claimer's lease is still fresh
    clock.advance(0.4)
    jobs = survivor.recover_stale_sync()
    if step == "staged":  # died before the claim rename: the file is still in inbox
        assert jobs == []
        jobs = [claim_one(survivor)]
    assert len(jobs) == 1
    assert jobs[0].manifest_path.read_text() == '{"v": 42}'
    assert [p.name for p in survivor.paths.active.iterdir()] == [jobs[0].job_id]
    assert list(survivor.paths.inbox.iterdir()) == []


def test_interrupted_finish_is_cleaned_up(tmp_path: Path) -> None:
    clock = FakeClock()
    queue = make_job_queue(tmp_path, clock, lease_ttl=0.3)
    drop(queue, "a.json")
    job = claim_one(queue)
    os.rename(job.manifest_path, queue.paths.done / "a.json")  # crash after the move
    assert queue.recover_stale_sync() == []  # a live finisher's lease: left alone
    assert job.dir.exists()
    clock.advance(0.4)
    assert queue.recover_stale_sync() == []
    assert list(queue.paths.active.iterdir()) == []


def test_unreadable_manifest_goes_to_failed(
    tmp_path: Path,
) -> None:
    def unreadable(path: Path) -> str:
        raise PermissionError(13, "Permission denied")

    queue = make_job_queue(tmp_path, hash_file=unreadable)
    drop(queue, "a.json")
    assert queue.claim_sync((queue.scan() or queue.scan())[0]) is None
    errors = list(queue.paths.failed.glob("*.error.json"))
    assert len(errors) == 1
    assert "cannot be read (Permission denied)" in errors[0].read_text()
    assert list(queue.paths.active.iterdir()) == []


@pytest.mark.parametrize("step", ["claimed", "hashed", "settled"])
def test_claimer_stalled_past_ttl_mid_claim_yields_one_holder(tmp_path: Path, step: str) -> None:
    clock = FakeClock()
    other = make_job_queue(tmp_path, clock, lease_ttl=0.3, worker_id="other")
    taken: list[ClaimedJob | None] = []

    def stall(at: str) -> None:
        if at == step and not taken:
            taken.append(None)  # once
            clock.advance(0.4)  # a frozen process: its lease goes stale meanwhile
            taken.extend(other.recover_stale_sync())

    slow = make_job_queue(tmp_path, clock, lease_ttl=0.3, worker_id="slow", crash_hook=stall)
    drop(slow, "a.json", '{"v": 3}')
    mine = slow.claim_sync((slow.scan() or slow.scan())[0])
    holders = [job for job in [mine, *taken] if job is not None]
    assert len(holders) == 1
    assert holders[0] in taken  # the taker, not the staller
    assert holders[0].manifest_path.read_text() == '{"v": 3}'
    other.renew(holders[0])
    assert [p.name for p in other.paths.active.iterdir()] == [holders[0].job_id]


def test_unreadable_manifest_found_by_recovery_goes_to_failed(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    queue = make_job_queue(tmp_path, clock, lease_ttl=0.2)
    drop(queue, "a.json")
    job = claim_one(queue)
    clock.advance(0.3)

    def unreadable(path: Path) -> str:
        raise PermissionError(13, "Permission denied")

    # the taker cannot read it
    queue = make_job_queue(tmp_path, clock, lease_ttl=0.2, hash_file=unreadable)
    assert queue.recover_stale_sync() == []
    assert (queue.paths.failed / f"{job.job_id}.json").exists()
    assert (queue.paths.failed / f"{job.job_id}.error.json").exists()
    assert list(queue.paths.active.iterdir()) == []


def test_pending_wait_tells_a_drain_when_to_look_again(tmp_path: Path) -> None:
    clock = FakeClock()
    queue = make_job_queue(tmp_path, clock, min_age=0.2)
    assert queue.scan() == [] and queue.pending_wait() is None
    drop(queue, "a.json")
    assert queue.scan() == []
    assert queue.pending_wait() == pytest.approx(0.2)  # first seen now: min_age to go
    clock.advance(0.15)
    assert queue.pending_wait() == pytest.approx(0.05, abs=1e-6)
    assert queue.scan() == []
    clock.advance(0.051)
    [candidate] = queue.scan()
    assert queue.claim_sync(candidate) is not None
    assert queue.scan() == [] and queue.pending_wait() is None
