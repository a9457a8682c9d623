"""One rate budget per API account, shared by the fleet through Redis (design.md §9).

Owns: the GCRA reservation in one Lua script (atomic on the Redis server, timed by the Redis
clock, so host clocks never matter), the fleet-wide 429 pause and credits pause, and the
fallback when Redis cannot be reached: each worker goes on alone at `rate / last seen fleet
size`, says so once, and returns to the shared budget when Redis answers again.

A worker reserves a small batch of slots at a time (about 50 ms of budget), so it calls Redis
at most ~20 times a second however high the rate is, and hands the slots out locally at their
times. `rate` and `burst` are the account's, not a worker's share.

`slot_offsets` is the pure arithmetic; `FleetBudget` is the async shell around it.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from worker.api.governor import TokenBucket
from worker.config.settings import setting_default
from worker.fleet.keys import AccountKeys

log = structlog.get_logger(__name__)

BATCH_S = 0.05  # budget reserved per call to Redis
RETRY_REDIS_S = 2.0  # while degraded, ask Redis again this often
US = 1_000_000

# KEYS: tat, pause, credits. ARGV: interval (µs), burst, slots. Returns, as strings, the
# offsets from Redis's now (µs) of the GCRA arrival time and of the earliest start (the end of
# a fleet-wide pause), and the credits message ("" when billed calls may go).
RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
local start = math.max(now, paused)
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), start)
local new_tat = tat + n * interval
local ttl = math.ceil((new_tat - now) / 1000) + 60000
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl)
local credits = redis.call('GET', KEYS[3]) or ''
return {string.format('%.0f', tat - now), string.format('%.0f', start - now), credits}
"""

# KEYS: pause. ARGV: delay (µs). Extends the fleet-wide pause to now + delay, never shortens it.
PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local delay = tonumber(ARGV[1])
local until_us = now + delay
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_us > current then
  local ttl = math.ceil(delay / 1000) + 1000
  redis.call('SET', KEYS[1], string.format('%.0f', until_us), 'PX', ttl)
  return 1
end
return 0
"""


def slot_offsets(
    tat_us: float, start_us: float, interval_us: float, burst: int, n: int
) -> list[float]:
    """Seconds from now of `n` slots reserved at once (pure GCRA).

    Slot i may go at the later of the earliest start (a pause's end) and its arrival time less
    the burst tolerance, so after an idle spell up to `burst` go at once and then they are
    `interval` apart.
    """
    tolerance = (burst - 1) * interval_us
    return [max(start_us, tat_us + i * interval_us - tolerance) / US for i in range(n)]


def batch_size(rate: float, batch_s: float = BATCH_S) -> int:
    """Slots per reservation: about `batch_s` of budget, at least one."""
    return max(1, math.floor(rate * batch_s))


class FleetBudget:
    """The account's budget as one worker sees it: slots from Redis, or alone when Redis is gone."""

    def __init__(
        self,
        redis: Redis,
        keys: AccountKeys,
        rate: float,
        burst: int = setting_default("burst"),
        *,
        credits_recheck: float = setting_default("credits_recheck"),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = anyio.sleep,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.rate = rate
        # The fleet keeps its slots evenly spaced (burst 1) and leaves the account's burst
        # tolerance to the server: requests of several hosts reach it with some jitter (each
        # host's scheduling, its distance), and that jitter must not cost a 429 that pauses all.
        self.burst = burst
        self._schedule_burst = 1
        self.credits_recheck = credits_recheck
        self.fleet_size = 1  # last seen, from membership: the share to take when Redis is gone
        self.degraded = False
        self.credits_message: str | None = None  # the fleet's credits pause, as last seen
        self.redis_calls = 0
        self._clock = clock
        self._sleep = sleep
        self._slots: deque[float] = deque()  # local send times (our clock) reserved in Redis
        self._lock = anyio.Lock()
        self._pending_pause = 0.0  # seconds, to push to Redis with the next call
        self._pending_credits: str | None = None
        self._alone: TokenBucket | None = None
        self._retry_at = 0.0
        self._reserve = redis.register_script(RESERVE)
        self._pause = redis.register_script(PAUSE)

    @property
    def share(self) -> float:
        """The rate this worker takes alone while Redis is unreachable."""
        return self.rate / max(1, self.fleet_size)

    async def wait_turn(self) -> None:
        """Sleep until this request's slot in the account's budget."""
        at = await self._next_slot()
        delay = at - self._clock()
        if delay > 0:
            await self._sleep(delay)

    def pause(self, delay: float) -> None:
        """A 429 with Retry-After here: the whole fleet holds for `delay` seconds."""
        self._pending_pause = max(self._pending_pause, delay)
        self._slots.clear()  # slots reserved before the 429 would land inside the pause

    def mark_credits(self, message: str) -> None:
        """A credits refusal here: billed calls pause fleet-wide for `credits_recheck`."""
        self._pending_credits = message

    async def _next_slot(self) -> float:
        async with self._lock:
            now = self._clock()
            while self._slots and self._slots[0] < now - 1.0:
                self._slots.popleft()  # stale (we slept through them): never burst on old slots
            if not self._slots:
                await self._refill(now)
            return self._slots.popleft()

    async def _refill(self, now: float) -> None:
        if self.degraded and now < self._retry_at:
            self._slots.append(self._alone_slot(now))
            return
        try:
            await self._push_pending()
            n = batch_size(self.rate)
            interval_us = US / self.rate
            tat, start, credits = await self._reserve(
                keys=[self.keys.tat, self.keys.pause, self.keys.credits],
                args=[f"{interval_us:.3f}", self._schedule_burst, n],
            )
            self.redis_calls += 1
        except (RedisError, OSError) as exc:
            self._go_alone(now, exc)
            self._slots.append(self._alone_slot(now))
            return
        if self.degraded:
            self.degraded = False
            log.warning("fleet_redis_back", rate=self.rate)
        text = credits.decode() if isinstance(credits, bytes) else str(credits)
        self.credits_message = text or None
        offsets = slot_offsets(float(tat), float(start), interval_us, self._schedule_burst, n)
        self._slots.extend(now + offset for offset in offsets)

    async def _push_pending(self) -> None:
        if self._pending_pause > 0:
            await self._pause(keys=[self.keys.pause], args=[f"{self._pending_pause * US:.0f}"])
            self._pending_pause = 0.0
            self.redis_calls += 1
        if self._pending_credits is not None:
            await self.redis.set(
                self.keys.credits, self._pending_credits, px=int(self.credits_recheck * 1000)
            )
            self._pending_credits = None
            self.redis_calls += 1

    def _go_alone(self, now: float, exc: BaseException) -> None:
        self._retry_at = now + RETRY_REDIS_S
        if not self.degraded:
            self.degraded = True
            self._alone = TokenBucket(self.share, 1, adaptive=False)
            log.error(
                "fleet_redis_unreachable",
                error=str(exc) or type(exc).__name__,
                alone_rate=round(self.share, 3),
                fleet_size=self.fleet_size,
            )

    def _alone_slot(self, now: float) -> float:
        if self._alone is None:
            self._alone = TokenBucket(self.share, 1, adaptive=False)
        return self._alone.reserve(now).at
