"""The fleet's Redis pieces against a real redis-server: the GCRA script's arithmetic, the
fleet-wide pause, going alone when Redis is gone and coming back, membership and locks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from tests.redis_harness import RedisServer, running_redis
from tests.support import free_port
from worker.fleet.budget import PAUSE, RESERVE, FleetBudget, batch_size, slot_offsets
from worker.fleet.keys import AccountKeys, account_id
from worker.fleet.locks import RedisLocks
from worker.fleet.membership import FleetMembership, list_fleet

KEYS = AccountKeys(account_id("http://api.test/v1", "demo"))
FAR = 4_000_000_000_000_000  # µs: far in the Redis clock's future, so "now" never matters


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path) as srv:
        yield srv


@pytest.fixture
async def redis(server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(server.url)
    try:
        yield client
    finally:
        await client.aclose()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)


def test_slot_offsets_space_slots_by_the_interval_after_the_burst() -> None:
    assert slot_offsets(0, 0, 100_000, 1, 3) == [0.0, 0.1, 0.2]
    assert slot_offsets(0, 0, 100_000, 3, 4) == [0.0, 0.0, 0.0, 0.1]  # burst 3 after idle
    assert slot_offsets(500_000, 0, 100_000, 1, 2) == [0.5, 0.6]  # budget already taken
    assert slot_offsets(0, 2_000_000, 100_000, 1, 2) == [2.0, 2.0]  # a pause holds them all


@pytest.mark.parametrize(("rate", "slots"), [(1, 1), (20, 1), (90, 4), (300, 15), (5000, 250)])
def test_a_batch_is_about_50_ms_of_budget(rate: float, slots: int) -> None:
    assert batch_size(rate) == slots


async def test_reserve_advances_the_arrival_time_by_exactly_the_slots_taken(redis: Redis) -> None:
    reserve = redis.register_script(RESERVE)
    await redis.set(KEYS.tat, FAR)
    keys = [KEYS.tat, KEYS.pause, KEYS.credits]
    tat, start, credits = await reserve(keys=keys, args=["1000", 1, 5])
    assert int(await redis.get(KEYS.tat)) == FAR + 5 * 1000
    assert int(tat) > 0 and int(start) == 0 and credits == b""
    await reserve(keys=keys, args=["1000", 1, 3])  # a second worker's batch follows the first
    assert int(await redis.get(KEYS.tat)) == FAR + 8 * 1000


async def test_a_pause_moves_the_schedule_and_is_never_shortened(redis: Redis) -> None:
    reserve = redis.register_script(RESERVE)
    pause = redis.register_script(PAUSE)
    assert await pause(keys=[KEYS.pause], args=["30000000"]) == 1  # 30 s
    assert await pause(keys=[KEYS.pause], args=["1000000"]) == 0  # 1 s: inside it already
    paused_until = int(await redis.get(KEYS.pause))
    tat, start, _ = await reserve(keys=[KEYS.tat, KEYS.pause, KEYS.credits], args=["1000", 1, 2])
    assert int(tat) == int(start) > 29_000_000  # the first slot waits for the pause's end
    assert int(await redis.get(KEYS.tat)) == paused_until + 2 * 1000


async def test_budgets_of_one_account_share_the_schedule_and_the_credits_pause(
    redis: Redis,
) -> None:
    clock = FakeClock()
    budgets = [FleetBudget(redis, KEYS, rate=100, clock=clock, sleep=clock.sleep) for _ in range(3)]
    await redis.set(KEYS.tat, FAR)
    for budget in budgets:
        for _ in range(batch_size(100)):
            await budget.wait_turn()
    assert int(await redis.get(KEYS.tat)) == FAR + 3 * batch_size(100) * 10_000
    assert [b.redis_calls for b in budgets] == [1, 1, 1]  # one call per batch, not per request

    budgets[0].mark_credits("Not enough credits")
    await budgets[0].wait_turn()  # pushes the pause with its next reservation
    await budgets[1].wait_turn()
    assert budgets[1].credits_message == "Not enough credits"


async def test_without_redis_a_worker_goes_on_alone_at_its_share_and_comes_back(
    tmp_path: Path,
) -> None:
    port = free_port()
    clock = FakeClock()
    client = Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.5)
    budget = FleetBudget(client, KEYS, rate=90, clock=clock, sleep=clock.sleep)
    budget.fleet_size = 3
    with capture_logs() as logs:
        for _ in range(30):
            await budget.wait_turn()
        assert budget.degraded
        assert 30 / clock.now == pytest.approx(30, rel=0.05)  # 90 / 3 on the injected clock
        with running_redis(tmp_path, port):
            clock.now += 5  # past the retry interval
            await budget.wait_turn()
            assert not budget.degraded
    await client.aclose()
    events = [e["event"] for e in logs]
    assert events.count("fleet_redis_unreachable") == 1  # said once, not per request
    assert events.count("fleet_redis_back") == 1


async def test_membership_counts_the_live_fleet(redis: Redis) -> None:
    members = [FleetMembership(redis, KEYS, f"host-{i}:1", interval=5) for i in range(3)]
    sizes = [await m.beat(jobs=i) for i, m in enumerate(members)]
    assert sizes == [1, 2, 3]
    fleet = await list_fleet(redis, KEYS)
    assert [m.worker_id for m in fleet] == ["host-0:1", "host-1:1", "host-2:1"]
    assert [m.jobs for m in fleet] == [0, 1, 2]
    await members[1].leave()
    assert [m.worker_id for m in await list_fleet(redis, KEYS)] == ["host-0:1", "host-2:1"]


class _CountingLock:
    """An inner lock that only counts its holds (the file lock's place)."""

    def __init__(self) -> None:
        self.held = 0

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        self.held += 1
        yield


async def test_a_fleet_lock_has_one_holder_across_workers(redis: Redis) -> None:
    first = RedisLocks(redis, KEYS, _CountingLock())
    second = RedisLocks(redis, KEYS, _CountingLock())
    order: list[str] = []
    inside = anyio.Event()
    leave = anyio.Event()

    async def hold_first() -> None:
        async with first.hold("demo/main/ann"):
            order.append("first in")
            inside.set()
            await leave.wait()
            order.append("first out")

    async def hold_second() -> None:
        await inside.wait()
        async with second.hold("demo/main/ann"):
            order.append("second in")

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold_first)
        tg.start_soon(hold_second)
        await inside.wait()
        await anyio.wait_all_tasks_blocked()
        assert order == ["first in"]  # the second waits on Redis, not on its file lock
        leave.set()
    assert order == ["first in", "first out", "second in"]
    assert await redis.exists(KEYS.lock("demo/main/ann")) == 0  # released, nothing left behind


async def test_without_redis_the_inner_lock_alone_holds(tmp_path: Path) -> None:
    client = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    inner = _CountingLock()
    with capture_logs() as logs:
        async with RedisLocks(client, KEYS, inner).hold("demo/main/ann"):
            pass
    await client.aclose()
    assert inner.held == 1
    assert [e["event"] for e in logs] == ["fleet_lock_unavailable"]


def test_status_lists_the_fleet_and_says_when_redis_is_gone(server: RedisServer) -> None:
    from worker.ops.status import gather_fleet, render_fleet

    async def beat() -> None:
        client = Redis.from_url(server.url)
        await FleetMembership(client, KEYS, "host-a:7", interval=5).beat(jobs=2)
        await client.aclose()

    anyio.run(beat)
    fleet = gather_fleet(server.url)
    [member] = fleet["accounts"][KEYS.account]
    assert (member["worker_id"], member["jobs"]) == ("host-a:7", 2)
    assert render_fleet(fleet)[0] == f"fleet of account {KEYS.account}: 1 worker(s)"
    gone = gather_fleet(f"redis://127.0.0.1:{free_port()}/0")
    assert gone["reachable"] is False
    assert render_fleet(gone)[0].startswith("fleet: Redis unreachable")
