"""Fleet membership: who is in the fleet, seen through heartbeat keys with a TTL.

Owns: each worker's heartbeat in Redis (a JSON key that expires, and its score in a sorted set
by the Redis clock), the fleet size the budget divides by when Redis goes away, and the list
`enroller status` prints. A worker that dies simply stops beating; its key expires and the
next beat of any worker drops it from the set.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime

import anyio
import structlog
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from worker.fleet.budget import FleetBudget
from worker.fleet.keys import PREFIX, AccountKeys

log = structlog.get_logger(__name__)

# KEYS: members, member. ARGV: worker id, JSON, ttl (s). Returns the live fleet size.
BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl = tonumber(ARGV[3])
redis.call('SET', KEYS[2], ARGV[2], 'EX', math.ceil(ttl))
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('EXPIRE', KEYS[1], math.ceil(ttl) * 10)
return redis.call('ZCARD', KEYS[1])
"""


class FleetMember(BaseModel):
    """One worker of the fleet, as its last heartbeat described it."""

    worker_id: str
    host: str
    pid: int
    jobs: int = 0
    degraded: bool = False  # going alone: it could not reach Redis at its last try
    last_seen: datetime | None = None


class FleetMembership:
    """This worker's heartbeat; `run` keeps it and the budget's fleet size current."""

    def __init__(
        self,
        redis: Redis,
        keys: AccountKeys,
        worker_id: str,
        *,
        interval: float = 5.0,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.worker_id = worker_id
        self.interval = interval
        self.ttl = max(3 * interval, 1.0)
        self._beat = redis.register_script(BEAT)

    async def beat(self, jobs: int, degraded: bool = False) -> int:
        """Write one heartbeat; returns how many workers are in the fleet now."""
        member = FleetMember(
            worker_id=self.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            jobs=jobs,
            degraded=degraded,
            last_seen=datetime.now(UTC),
        )
        size = await self._beat(
            keys=[self.keys.members, self.keys.member(self.worker_id)],
            args=[self.worker_id, member.model_dump_json(), self.ttl],
        )
        return int(size)

    async def run(self, budget: FleetBudget, jobs: Callable[[], int]) -> None:
        """Beat every `interval` until cancelled; a Redis outage is the budget's to report."""
        while True:
            try:
                budget.fleet_size = max(1, await self.beat(jobs(), budget.degraded))
            except (RedisError, OSError) as exc:
                log.debug("fleet_heartbeat_failed", error=str(exc) or type(exc).__name__)
            await anyio.sleep(self.interval)

    async def leave(self) -> None:
        """Drop out of the fleet at once on a clean stop (best effort)."""
        try:
            await self.redis.zrem(self.keys.members, self.worker_id)
            await self.redis.delete(self.keys.member(self.worker_id))
        except (RedisError, OSError):
            pass


async def list_fleets(redis: Redis) -> dict[str, list[FleetMember]]:
    """Every account's fleet in this Redis, by account id (what `enroller status` shows)."""
    fleets: dict[str, list[FleetMember]] = {}
    async for raw in redis.scan_iter(match=f"{PREFIX}:{{*}}:members", count=100):
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        account = name.split("{", 1)[1].split("}", 1)[0]
        members = await list_fleet(redis, AccountKeys(account))
        if members:
            fleets[account] = members
    return fleets


async def list_fleet(redis: Redis, keys: AccountKeys) -> list[FleetMember]:
    """Every worker whose heartbeat has not expired, by worker id."""
    ids = [
        i.decode() if isinstance(i, bytes) else str(i)
        for i in await redis.zrange(keys.members, 0, -1)
    ]
    if not ids:
        return []
    docs = await redis.mget([keys.member(i) for i in ids])
    members = []
    for doc in docs:
        if doc is None:
            continue  # expired since the set was read
        try:
            members.append(FleetMember.model_validate(json.loads(doc)))
        except (ValidationError, ValueError):
            continue
    return sorted(members, key=lambda m: m.worker_id)
