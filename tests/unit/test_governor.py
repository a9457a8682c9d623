"""The rate arithmetic (pure, no sleeping) and the governor's shell with a fake clock."""

from __future__ import annotations

import heapq
import itertools

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.api.errors import CreditsExhausted
from worker.api.governor import Governor, TokenBucket


def slots(bucket: TokenBucket, times: list[float]) -> list[float]:
    return [bucket.reserve(t).at for t in times]


def test_burst_one_spaces_requests_evenly() -> None:
    assert slots(TokenBucket(20, 1), [0.0] * 5) == pytest.approx([0, 0.05, 0.10, 0.15, 0.20])


def test_burst_lets_that_many_go_at_once_then_paces() -> None:
    assert slots(TokenBucket(10, 3), [0.0] * 5) == pytest.approx([0, 0, 0, 0.1, 0.2])


def test_idle_spell_refills_the_burst_but_no_more() -> None:
    bucket = TokenBucket(10, 2)
    slots(bucket, [0.0] * 4)  # schedule now runs to 0.3
    assert slots(bucket, [10.0] * 4) == pytest.approx([10.0, 10.0, 10.1, 10.2])


def test_a_late_caller_is_not_delayed() -> None:
    bucket = TokenBucket(10, 1)
    assert bucket.reserve(0.0).at == 0.0
    assert bucket.reserve(0.5).at == 0.5  # the slot at 0.1 is long past: send now


@given(
    rate=st.floats(1, 200),
    burst=st.integers(1, 10),
    arrivals=st.lists(st.floats(0, 5), min_size=1, max_size=200),
)
def test_no_window_ever_exceeds_burst_plus_rate(
    rate: float, burst: int, arrivals: list[float]
) -> None:
    bucket = TokenBucket(rate, burst, adaptive=False)
    sent = sorted(slots(bucket, sorted(arrivals)))
    # Any window of length w holds at most burst + w*rate sends (the GCRA guarantee).
    for i, start in enumerate(sent):
        for j in range(i, len(sent)):
            width = sent[j] - start
            assert j - i + 1 <= burst + width * rate + 1e-6


def test_pause_voids_slots_and_restarts_the_schedule_after_it() -> None:
    bucket = TokenBucket(10, 1)
    early = [bucket.reserve(0.0) for _ in range(3)]  # 0.0, 0.1, 0.2
    assert bucket.pause(1.0)
    assert not any(bucket.valid(r) for r in early)
    assert slots(bucket, [0.3, 0.3]) == pytest.approx([1.0, 1.1])
    assert not bucket.pause(0.5)  # a shorter pause does not shorten the current one


def test_throttle_halves_once_per_episode_and_success_creeps_back() -> None:
    bucket = TokenBucket(40, 1, increase=0.1)
    assert bucket.throttled(0.0, retry_after=0.2)
    assert bucket.rate == 20
    assert not bucket.throttled(0.5)  # same episode: answers of requests already in flight
    assert bucket.throttled(1.5)
    assert bucket.rate == 10
    for _ in range(3):
        bucket.succeeded()
    assert bucket.rate == pytest.approx(22)
    for _ in range(100):
        bucket.succeeded()
    assert bucket.rate == 40


def test_a_holder_woken_too_late_restarts_the_schedule_instead_of_sending() -> None:
    bucket = TokenBucket(100, 1, catch_up=3)
    slots_ = [bucket.reserve(0.0) for _ in range(10)]  # 0.00 … 0.09
    assert not bucket.late(slots_[1], 0.035)  # 25 ms late: within 3 slots, it may go
    assert bucket.late(slots_[1], 0.045)  # 35 ms late: the loop stalled
    bucket.restart(0.3)
    assert not any(bucket.valid(r) for r in slots_)  # every slot handed out is void
    assert slots(bucket, [0.3, 0.3, 0.3]) == pytest.approx([0.3, 0.31, 0.32])  # re-spaced


def test_throttle_lowers_the_rate_by_the_share_of_in_flight_requests_refused() -> None:
    bucket = TokenBucket(300, 1)
    # 29 others in flight when the first 429 came: each 429 of the episode takes 1/30 off.
    assert bucket.throttled(0.0, retry_after=1.0, in_flight=29)
    assert bucket.rate == pytest.approx(290)
    assert bucket.throttled(0.01, in_flight=28)  # same episode: same step
    assert bucket.rate == pytest.approx(280)
    for t in range(40):  # a client far too fast: never more than halved in one episode
        bucket.throttled(0.02 + t / 1000, in_flight=20)
    assert bucket.rate == pytest.approx(150)
    assert bucket.throttled(2.0, in_flight=0)  # a new episode, nothing else in flight: halve
    assert bucket.rate == pytest.approx(75)


def test_throttle_never_goes_below_the_floor_nor_adapts_when_off() -> None:
    bucket = TokenBucket(20, 1, min_rate=5)
    for t in range(10):
        bucket.throttled(float(t * 10))
    assert bucket.rate == 5
    fixed = TokenBucket(20, 1, adaptive=False)
    fixed.throttled(0.0)
    assert fixed.rate == 20


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match=r"rate must be > 0 and burst >= 1"):
        TokenBucket(0, 1)
    with pytest.raises(ValueError, match=r"rate must be > 0 and burst >= 1"):
        TokenBucket(1, 0)


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        await anyio.lowlevel.checkpoint()


async def test_governor_paces_sequential_requests_and_counts_waiting() -> None:
    fake = FakeTime()
    gov = Governor(10, 1, clock=fake.clock, sleep=fake.sleep)
    sent = []
    for _ in range(4):
        async with gov.slot():
            sent.append(fake.now)
    assert sent == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert gov.stats.requests == 4
    assert gov.stats.wait_seconds == pytest.approx(0.3)
    assert gov.stats.in_flight_now == 0


async def test_governor_throttle_pauses_everyone_until_retry_after() -> None:
    fake = FakeTime()
    gov = Governor(10, 1, clock=fake.clock, sleep=fake.sleep)
    async with gov.slot():
        pass
    gov.throttled(2.0)
    async with gov.slot():
        assert fake.now == pytest.approx(2.0)
    assert gov.stats.throttled == 1
    assert gov.stats.rate == 5  # halved: the server's budget is below ours


class VirtualLoop:
    """Concurrent sleepers on a virtual clock: whatever is due wakes together, as in a loop."""

    def __init__(self) -> None:
        self.now = 0.0
        self._due: list[tuple[float, int, anyio.Event]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        event = anyio.Event()
        heapq.heappush(self._due, (self.now + max(0.0, seconds), len(self._due) + id(event), event))
        await event.wait()

    async def run(self, done: anyio.Event) -> None:
        while not done.is_set():
            await anyio.wait_all_tasks_blocked()
            if not self._due:
                continue
            self.now = max(self.now, self._due[0][0])
            while self._due and self._due[0][0] <= self.now:
                heapq.heappop(self._due)[2].set()


async def test_a_stalled_loop_releases_a_few_sends_together_not_every_slot_it_missed() -> None:
    loop = VirtualLoop()
    gov = Governor(100, 1, clock=loop.clock, sleep=loop.sleep)
    sent: list[float] = []

    async def one() -> None:
        async with gov.slot():
            sent.append(loop.now)
            if len(sent) == 5:
                loop.now += 0.2  # the loop was busy elsewhere for 20 slots

    done = anyio.Event()
    async with anyio.create_task_group() as driver:
        driver.start_soon(loop.run, done)
        async with anyio.create_task_group() as tg:
            for _ in range(30):
                tg.start_soon(one)
        done.set()
    assert len(sent) == 30
    at = [round(t, 9) for t in sent]
    assert max(at.count(t) for t in at) <= gov.bucket.catch_up + 1, at
    assert gov.stats.restarts >= 1
    # Afterwards the rate again (not the 20 missed slots at once), from the end of the stall.
    assert at[5] == pytest.approx(0.24)
    assert [b - a for a, b in itertools.pairwise(at[-10:])] == pytest.approx([0.01] * 9)


def test_margin_paces_under_the_configured_rate() -> None:
    assert Governor(300, margin=0.01).bucket.rate == pytest.approx(297)
    with pytest.raises(ValueError, match=r"margin must be in \[0, 1\)"):
        Governor(300, margin=1.0)


async def test_governor_throttle_takes_the_share_refused_of_what_is_in_flight() -> None:
    gov = Governor(100, 1, max_in_flight=64)
    gov.stats.in_flight_now = 19  # as the slots of 19 unanswered requests would have it
    gov.throttled(1.0)
    assert gov.stats.rate == pytest.approx(95)


async def test_caps_bound_requests_in_flight_and_uploads() -> None:
    gov = Governor(10_000, 100, max_in_flight=3, max_uploads=2)
    peak = {"in_flight": 0, "uploads": 0}

    async def one(upload: bool) -> None:
        async with gov.slot(upload=upload):
            peak["in_flight"] = max(peak["in_flight"], gov.stats.in_flight_now)
            peak["uploads"] = max(peak["uploads"], gov.stats.uploads_now)
            await anyio.sleep(0.01)  # kept: a request on the wire, while the others queue for slots

    async with anyio.create_task_group() as tg:
        for i in range(12):
            tg.start_soon(one, i % 2 == 0)
    assert peak == {"in_flight": 3, "uploads": 2}
    assert gov.stats.uploads_now == 0 and gov.stats.in_flight_now == 0


def test_credits_exhausted_refuses_computes_until_the_recheck() -> None:
    now = [0.0]
    gov = Governor(10, credits_recheck=300.0, clock=lambda: now[0])
    gov.check_credits()  # nothing to refuse yet
    gov.mark_credits_exhausted(CreditsExhausted("Not enough credits", method="POST", route="/x"))
    assert gov.credits_exhausted
    with pytest.raises(
        CreditsExhausted, match=r"HTTP 429: computes paused: Not enough credits"
    ) as info:
        gov.check_credits()
    assert info.value.sent is False and "Not enough credits" in str(info.value)
    now[0] += 300.0  # the recheck interval: computes may ask the server again
    gov.check_credits()
    assert gov.stats.credits_refused == 2


async def test_request_meter_counts_each_jobs_requests_apart() -> None:
    from worker.api.governor import Governor, RequestMeter

    governor = Governor(1000.0, 10)
    job_a, job_b = RequestMeter(), RequestMeter()

    async def send(meter: RequestMeter, n: int) -> None:
        for _ in range(n):
            async with governor.slot(meter=meter):  # a job's view of the client passes its own
                pass

    import anyio

    async with anyio.create_task_group() as tg:
        tg.start_soon(send, job_a, 3)
        tg.start_soon(send, job_b, 5)
        async with governor.slot():  # the process's own client (GET /user): no job's request
            pass
    assert (job_a.requests, job_b.requests) == (3, 5)
    assert governor.stats.requests == 9


def test_credits_pause_lifts_after_the_recheck_interval() -> None:
    from worker.api.errors import CreditsExhausted
    from worker.api.governor import Governor

    now = [100.0]
    governor = Governor(10.0, credits_recheck=300.0, clock=lambda: now[0])
    governor.mark_credits_exhausted(CreditsExhausted("Not enough credits"))
    now[0] += 299.0
    assert governor.credits_exhausted
    with pytest.raises(CreditsExhausted, match=r"computes paused: Not enough credits") as refused:
        governor.check_credits()
    assert refused.value.sent is False  # refused locally: no request
    now[0] += 1.0
    assert not governor.credits_exhausted  # one compute may ask the server again
    governor.check_credits()
