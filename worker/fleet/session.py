"""Joining the fleet for one `enroller run`: Redis, the shared budget, the heartbeat.

Owns the wiring only: which account the budget belongs to (the API base URL and the caller's
handle from `GET /user`, hashed), handing the budget to the client's governor, beating while
the worker runs and leaving on the way out. It is imported only when `ENROLLER_REDIS_URL` is
set, so a single worker never loads Redis at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import structlog
from redis.asyncio import Redis

from worker.api.governor import Governor
from worker.base.masking import mask_url_userinfo
from worker.config.settings import Settings
from worker.fleet.budget import FleetBudget
from worker.fleet.keys import AccountKeys, account_id
from worker.fleet.locks import KeyLocks, RedisLocks
from worker.fleet.membership import FleetMembership

log = structlog.get_logger(__name__)

REDIS_TIMEOUT_S = 2.0  # a Redis that does not answer within this is "unreachable"


@dataclass
class Fleet:
    """This worker's place in the fleet while it runs."""

    redis: Redis
    keys: AccountKeys
    budget: FleetBudget
    membership: FleetMembership

    def locks(self, inner: KeyLocks) -> RedisLocks:
        """Fleet-wide locks around this worker's own (file) locks."""
        return RedisLocks(self.redis, self.keys, inner)


def connect(url: str) -> Redis:
    """A Redis client that gives up quickly, so an outage degrades instead of hanging."""
    return Redis.from_url(
        url,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        socket_timeout=REDIS_TIMEOUT_S,
        health_check_interval=10,
    )


@asynccontextmanager
async def joined_fleet(
    settings: Settings, governor: Governor, user_handle: str, jobs: Callable[[], int]
) -> AsyncIterator[Fleet | None]:
    """The fleet while the block runs, or None when no Redis is configured."""
    if not settings.redis_url:
        yield None
        return
    redis = connect(settings.redis_url)
    keys = AccountKeys(account_id(settings.api_url, user_handle))
    budget = FleetBudget(
        redis,
        keys,
        settings.rate_limit,
        settings.burst,
        credits_recheck=settings.credits_recheck,
    )
    membership = FleetMembership(
        redis, keys, settings.worker_id, interval=settings.heartbeat_interval
    )
    governor.shared = budget
    log.info(
        "fleet_joined",
        redis=mask_url_userinfo(settings.redis_url),
        account=keys.account,
        rate_limit=settings.rate_limit,
    )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(membership.run, budget, jobs)
            yield Fleet(redis, keys, budget, membership)
            tg.cancel_scope.cancel()
    finally:
        governor.shared = None
        with anyio.CancelScope(shield=True):
            await membership.leave()
            await redis.aclose()
