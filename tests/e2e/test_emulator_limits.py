"""Emulator over real sockets: pagination, rate limit (429 + Retry-After), faults, latency."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import pytest

from tests.emulator_harness import DEMO_KEY, OTHER_KEY, EmulatorHandle, running_emulator
from tests.fakeclock import FakeClock
from tests.support import wait_for

SPACE = "/spaces/demo/main"


async def test_pagination_headers_pages_and_sorting(emulator: EmulatorHandle) -> None:
    async with emulator.client() as api:
        handles = [f"id-{i:02d}" for i in range(7)]
        for h in reversed(handles):
            await api.post(f"{SPACE}/identities", json={"handle": h, "alias": f"Person {h}"})
        pages = []
        for page in (1, 2, 3):
            reply = await api.get(
                f"{SPACE}/identities", params={"page": page, "page-size": 3, "sort": "handle"}
            )
            assert reply.status == 200
            assert isinstance(reply.body, list)  # a bare array
            assert reply.headers["Page-Total"] == "3"
            assert reply.headers["Page-Size"] == "3"
            assert reply.headers["Page-Current"] == str(page)
            assert reply.headers["Item-Total"] == "7"
            pages.append([i["handle"] for i in reply.body])
        assert pages == [handles[0:3], handles[3:6], handles[6:]]
        default = await api.get(f"{SPACE}/identities")
        assert default.headers["Page-Size"] == "20"
        assert [i["handle"] for i in default.body] == list(reversed(handles))  # createdAt
        desc = await api.get(f"{SPACE}/identities", params={"sort": "-handle"})
        assert [i["handle"] for i in desc.body] == list(reversed(handles))
        search = await api.get(f"{SPACE}/identities", params={"search": "PERSON ID-03"})
        assert [i["handle"] for i in search.body] == ["id-03"]
        by_handle = await api.get(f"{SPACE}/identities", params={"search": "-05"})
        assert [i["handle"] for i in by_handle.body] == ["id-05"]
        empty = await api.get("/spaces/acme/onboarding/identities")
        assert empty.body == [] and empty.headers["Page-Total"] == "0"
        assert empty.headers["Item-Total"] == "0"


@pytest.mark.parametrize(
    "params",
    [
        {"page": 0},
        {"page": -1},
        {"page": "x"},
        {"page": 2},  # beyond the last page
        {"page-size": 0},
        {"page-size": 51},
        {"sort": "alias"},
        {"after": "yesterday"},
        {"before": "2026-13-01T00:00:00Z"},
    ],
)
async def test_out_of_range_pagination_is_400(emulator: EmulatorHandle, params: dict) -> None:
    async with emulator.client() as api:
        await api.post(f"{SPACE}/identities", json={"handle": "one"})
        reply = await api.get(f"{SPACE}/identities", params=params)
    assert reply.status == 400
    assert reply.body["message"]


async def test_after_and_before_are_inclusive() -> None:
    clock = FakeClock()  # createdAt 2 ms apart, by the emulator's clock: no sleeping
    async with running_emulator(clock=clock.utc) as emulator, emulator.client() as api:
        created = []
        for h in ("t1", "t2", "t3"):
            created.append((await api.post(f"{SPACE}/identities", json={"handle": h})).body)
            clock.advance(0.002)
        middle = created[1]["createdAt"]
        after = await api.get(f"{SPACE}/identities", params={"after": middle})
        before = await api.get(f"{SPACE}/identities", params={"before": middle})
        both = await api.get(f"{SPACE}/identities", params={"after": middle, "before": middle})
    assert [i["handle"] for i in after.body] == ["t2", "t3"]
    assert [i["handle"] for i in before.body] == ["t1", "t2"]
    assert [i["handle"] for i in both.body] == ["t2"]


async def test_burst_beyond_rate_limit_gets_429_with_retry_after() -> None:
    async with running_emulator(rate_limit=0.5, burst=3) as emu, emu.client() as api:
        replies = await asyncio.gather(*(api.get("/user") for _ in range(6)))
        statuses = sorted(r.status for r in replies)
        assert statuses == [200, 200, 200, 429, 429, 429]
        limited = next(r for r in replies if r.status == 429)
        assert int(limited.headers["Retry-After"]) >= 1
        assert "rate limit" in limited.body["message"]
        # The bucket is per token: another token is not limited by demo's burst.
        assert (await api.get("/user", token=OTHER_KEY)).status == 200
        stats = await emu.stats()
        assert stats["rate_limited"] == 3
        assert stats["requests"]["by_status"]["429"] == 3
        # Ignoring Retry-After is counted (for client tests); obeying it is not. The six went
        # out together, so the refused ones were on their way before any 429 left: no
        # violation. One sent once the 429s are read (Retry-After is 2 s) disobeys.
        assert stats["retry_after_violations"] == 0
        # Past the 429s' in-flight grace, on the limiter's own clock (monotonic, in the
        # emulator's process): a request now was sent after the refusals were read.
        limiter = emu.emulator.limiter
        grace_over = limiter.buckets[DEMO_KEY].blocked_since + limiter.in_flight_grace_s
        await wait_for(lambda: time.monotonic() > grace_over, 10, "the in-flight grace over")
        again = await api.get("/user")
        assert again.status == 429
        assert (await emu.stats())["retry_after_violations"] == 1
        # Kept: this is a client obeying Retry-After, and sleeping what it says is the obeying.
        # (The limiter reads time.monotonic() in emulator/app.py: no clock to move instead.)
        await asyncio.sleep(int(again.headers["Retry-After"]))
        assert (await api.get("/user")).status == 200
        assert (await emu.stats())["retry_after_violations"] == 1


async def test_no_rate_limit_by_default(emulator: EmulatorHandle) -> None:
    async with emulator.client() as api:
        replies = await asyncio.gather(*(api.get("/user") for _ in range(40)))
    assert {r.status for r in replies} == {200}


async def test_faults_are_500_503_or_dropped_and_seeded() -> None:
    async def run(seed: int) -> list[str]:
        outcomes = []
        async with running_emulator(fault_rate=1.0, seed=seed) as emu:
            for i in range(20):
                # A fresh connection each time: a dropped one must not poison the next.
                async with emu.client() as api:
                    try:
                        reply = await api.post(f"{SPACE}/identities", json={"handle": f"f{i}"})
                        outcomes.append(str(reply.status))
                        assert reply.body["message"].startswith("injected fault")
                    except aiohttp.ClientError:
                        outcomes.append("dropped")
            stats = await emu.stats()
            kept = len(emu.emulator.state.spaces["demo/main"].identities)
        assert set(outcomes) == {"500", "503", "dropped"}
        assert stats["faults"]["after_effect"] == kept > 0  # effects that happened anyway
        assert stats["requests"]["by_status"].get("dropped") == outcomes.count("dropped")
        return outcomes

    assert await run(3) == await run(3)


async def test_fault_after_effect_leaves_the_effect_in_place() -> None:
    async with running_emulator(fault_rate=1.0, seed=11) as emu:
        for i in range(10):
            async with emu.client() as api:
                with contextlib.suppress(aiohttp.ClientError):
                    await api.post(f"{SPACE}/identities", json={"handle": f"x{i}"})
        stats = await emu.stats()
        created = list(emu.emulator.state.spaces["demo/main"].identities)
    # Every fault either happened before (no identity) or after (identity exists).
    assert stats["faults"]["before_effect"] + stats["faults"]["after_effect"] == 10
    assert len(created) == stats["faults"]["after_effect"]
    assert stats["created"]["identities"] == len(created)


async def test_reads_fail_only_before_and_stats_are_never_faulted() -> None:
    async with running_emulator(fault_rate=1.0, seed=5) as emu:
        for _ in range(5):
            async with emu.client() as api:
                with contextlib.suppress(aiohttp.ClientError):
                    await api.get("/user")
        stats = await emu.stats()  # answered, whole, at a fault rate of 1.0
    assert stats["faults"].get("after_effect", 0) == 0
    # aiohttp resends an idempotent GET once after a disconnect, so count what arrived.
    assert stats["faults"]["before_effect"] == stats["requests"]["by_route"]["GET /user"] >= 5


async def test_latency_is_added_to_api_responses_and_never_to_stats() -> None:
    """By event order, not by a stopwatch: while one API request sits in its latency, a stats
    request goes in and comes back, still seeing the API request in flight."""
    async with running_emulator(latency_ms=2000, fault_rate=1.0, seed=5) as emu:
        answered: list[int] = []

        async def slow_call() -> None:
            async with emu.client() as api:
                with contextlib.suppress(aiohttp.ClientError):
                    answered.append((await api.get("/user")).status)

        async with asyncio.timeout(30), asyncio.TaskGroup() as tg:
            tg.create_task(slow_call())
            await wait_for(lambda: emu.emulator.stats.in_flight, 30, "the API request arrived")
            during = await emu.stats()
            assert not answered  # the API request is still held by its latency
        after = await emu.stats()
    assert during["requests"]["in_flight"] == 1  # stats went past it: no latency, no fault
    assert after["requests"]["in_flight"] == 0
    assert after["requests"]["by_route"]["GET /user"] >= 1
