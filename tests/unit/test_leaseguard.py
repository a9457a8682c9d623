"""The lease guard: a sender waits for a renewal once the lease may have lapsed, never longer."""

from __future__ import annotations

import anyio
import pytest
from pydantic import SecretStr

from tests.fakeclock import FakeClock
from worker.api.auth import ApiKeyAuth
from worker.api.client import ApiClient
from worker.api.governor import Governor
from worker.api.transport import Answer, Request
from worker.queue.leaseguard import LeaseGuard

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


class Wire:
    """A transport that answers every request with `GET /user`'s body, and counts them."""

    def __init__(self) -> None:
        self.sent = 0

    async def open(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def send(self, request: Request) -> Answer:
        self.sent += 1
        return Answer(200, {}, b'{"handle": "me", "orgs": []}')


async def test_only_the_job_view_of_the_client_is_held_by_its_guard() -> None:
    clock = FakeClock(1000.0)
    stale = LeaseGuard(TTL, clock=clock)
    clock.advance(TTL)
    wire = Wire()
    client = ApiClient(
        "http://api.test/v1",
        ApiKeyAuth(SecretStr("key")),
        governor=Governor(10_000, 100),
        transport=wire,
    )
    job_view = client.gated(stale.confirmed)  # as the job boundary does
    with anyio.fail_after(5):
        await client.get_user()  # no job guard here (a startup request): never waits
    assert wire.sent == 1
    with anyio.move_on_after(0.05) as held:
        await job_view.get_credits("me")
    assert held.cancelled_caught and wire.sent == 1  # held before it left: never sent
