"""The lease guard: a sender waits for a renewal once the lease may have lapsed, never longer."""

from __future__ import annotations

import anyio
import pytest

from tests.fakeclock import FakeClock
from worker.queue.leaseguard import LEASE_GUARD, LeaseGuard, lease_confirmed

pytestmark = pytest.mark.anyio

TTL = 30.0


def test_a_fresh_claim_is_trusted_until_two_thirds_of_the_ttl() -> None:
    clock = FakeClock(1000.0)
    guard = LeaseGuard(TTL, clock=clock)
    clock.advance(TTL * 2 / 3 - 0.01)
    assert guard.trusted()
    clock.advance(0.02)
    assert not guard.trusted()


def test_a_renewal_counts_from_when_its_write_began() -> None:
    clock = FakeClock(1000.0)
    guard = LeaseGuard(TTL, clock=clock)
    clock.advance(25.0)
    guard.renewed(started_at=clock.now - 5.0)  # a slow disk: the write took 5 s
    clock.advance(TTL * 2 / 3 - 5.0 + 0.01)
    assert not guard.trusted()


def test_an_older_renewal_reported_late_never_moves_the_trust_back() -> None:
    clock = FakeClock(1000.0)
    guard = LeaseGuard(TTL, clock=clock)
    clock.advance(10.0)
    guard.renewed(started_at=clock.now)
    guard.renewed(started_at=clock.now - 9.0)
    clock.advance(TTL * 2 / 3 - 1.0)
    assert guard.trusted()


async def test_a_sender_on_a_stale_lease_wakes_the_heartbeat_and_waits_for_its_renewal() -> None:
    clock = FakeClock(1000.0)
    guard = LeaseGuard(TTL, clock=clock)
    clock.advance(TTL)  # frozen past the whole TTL, then thawed
    order: list[str] = []

    async def heartbeat() -> None:
        await guard.wait_asked(3600.0)  # woken by the sender, not by its hour-long sleep
        order.append("renewing")
        guard.renewed(started_at=clock.now)

    async def sender() -> None:
        await guard.confirmed()
        order.append("sent")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(heartbeat)
            tg.start_soon(sender)
    assert order == ["renewing", "sent"]


async def test_a_lost_lease_cancels_the_waiting_sender_so_nothing_is_sent() -> None:
    clock = FakeClock(1000.0)
    guard = LeaseGuard(TTL, clock=clock)
    clock.advance(TTL)
    sent: list[str] = []

    class LeaseLostError(Exception):
        pass

    async def heartbeat() -> None:
        await guard.wait_asked(3600.0)
        raise LeaseLostError("taken over")  # what the queue's heartbeat raises: no renewal

    async def sender() -> None:
        await guard.confirmed()
        sent.append("request")

    with anyio.fail_after(5), pytest.raises(ExceptionGroup, match="unhandled errors"):
        async with anyio.create_task_group() as tg:
            tg.start_soon(heartbeat)
            tg.start_soon(sender)
    assert sent == []


async def test_a_trusted_lease_costs_the_sender_no_wait_and_the_heartbeat_sleeps_on() -> None:
    clock = FakeClock(1000.0)
    guard = LeaseGuard(TTL, clock=clock)
    with anyio.fail_after(5):
        await guard.confirmed()
    with anyio.move_on_after(0.05) as sleeping:
        await guard.wait_asked(3600.0)
    assert sleeping.cancelled_caught  # nobody asked: it was still asleep when the test woke it


async def test_only_the_job_that_set_a_guard_is_held_by_it() -> None:
    clock = FakeClock(1000.0)
    stale = LeaseGuard(TTL, clock=clock)
    clock.advance(TTL)
    with anyio.fail_after(5):
        await lease_confirmed()  # no job guard here (a startup request): never waits
    token = LEASE_GUARD.set(stale)
    try:
        with anyio.move_on_after(0.05) as held:
            await lease_confirmed()
        assert held.cancelled_caught
    finally:
        LEASE_GUARD.reset(token)
