"""Issue 14, point 5: leases survive clock skew. A holder on another host whose clock is ten
minutes ahead or behind never loses a live job to this worker, and never keeps a dead one:
this worker judges another host's lease by how long it has seen it unchanged, on its own
monotonic clock (here a FakeClock), never by the time the holder wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_queue import claim_one
from tests.fakeclock import FakeClock
from tests.support import drop, make_job_queue
from worker.queue.jobqueue import JobQueue

TTL = 60.0


def _queue(root: Path, host: str, **clocks: Any) -> JobQueue:
    queue = make_job_queue(root, lease_ttl=TTL, host=host, **clocks)  # as if on another machine
    return queue


@pytest.mark.parametrize("skew", [600.0, -600.0], ids=["ahead", "behind"])
def test_a_live_lease_of_a_skewed_host_is_never_taken(tmp_path: Path, skew: float) -> None:
    wall = FakeClock()
    holder = _queue(tmp_path, "host-b", clock=lambda: wall.now + skew)
    ours = FakeClock(0.0)
    taker = _queue(tmp_path, "host-a", clock=wall, monotonic=ours)
    drop(holder, "x.json")
    job = claim_one(holder)
    for _ in range(30):  # ten lease lifetimes, renewed every ttl / 3 as the heartbeat does
        assert taker.recover_stale_sync() == []
        wall.advance(TTL / 3)
        ours.advance(TTL / 3)
        holder.renew(job)
    holder.renew(job)  # still the holder: nobody took a generation above ours


@pytest.mark.parametrize("skew", [600.0, -600.0], ids=["ahead", "behind"])
def test_a_dead_lease_of_a_skewed_host_is_taken_after_one_ttl(tmp_path: Path, skew: float) -> None:
    wall = FakeClock()
    holder = _queue(tmp_path, "host-b", clock=lambda: wall.now + skew)
    ours = FakeClock(0.0)
    taker = _queue(tmp_path, "host-a", clock=wall, monotonic=ours)
    drop(holder, "x.json")
    job = claim_one(holder)  # ...and then its host dies: no renewal ever again
    assert taker.recover_stale_sync() == []  # first sight: a lease is never judged on sight
    ours.advance(TTL - 1)
    wall.advance(TTL - 1)
    assert taker.recover_stale_sync() == []  # seen unchanged for less than a ttl
    ours.advance(2)
    wall.advance(2)
    [taken] = taker.recover_stale_sync()
    assert taken.job_id == job.job_id and taken.generation == job.generation + 1
