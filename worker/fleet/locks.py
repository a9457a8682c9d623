"""Voiceprint locks across the fleet: a Redis lock around the file lock.

Owns: one holder per key across every host of the fleet. The Redis lock (redis-py's `Lock`: a
random token, an expiry, renewal by `reacquire`, and a release that deletes the key only if
the token is still ours, in one Lua script) orders hosts that may not share working `fcntl`
locks; the file lock under `<queue>/.locks/` is still taken inside it, so safety never rests on
Redis alone. While Redis cannot be reached the file lock alone holds, as without a fleet.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

import anyio
import structlog
from redis.asyncio import Redis
from redis.exceptions import LockError, RedisError

from worker.fleet.keys import AccountKeys

log = structlog.get_logger(__name__)

LOCK_TTL_S = 30.0  # renewed every third of it while held; a dead holder's lock expires


class KeyLocks(Protocol):
    """What both lock kinds offer: `async with locks.hold(key)`."""

    def hold(self, key: str) -> contextlib.AbstractAsyncContextManager[None]: ...


class RedisLocks:
    """Fleet-wide locks per key, each wrapping the same key's `inner` (file) lock."""

    def __init__(
        self, redis: Redis, keys: AccountKeys, inner: KeyLocks, ttl: float = LOCK_TTL_S
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.inner = inner
        self.ttl = ttl

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self.redis.lock(
            self.keys.lock(key), timeout=self.ttl, sleep=0.05, thread_local=False
        )
        try:
            held = await lock.acquire()
        except (RedisError, OSError) as exc:
            log.warning("fleet_lock_unavailable", error=str(exc) or type(exc).__name__)
            held = False
        try:
            async with anyio.create_task_group() as tg:
                if held:
                    tg.start_soon(self._renew, lock)
                async with self.inner.hold(key):
                    yield
                tg.cancel_scope.cancel()
        finally:
            if held:
                with anyio.CancelScope(shield=True):
                    await _release(lock)

    async def _renew(self, lock: object) -> None:
        while True:
            await anyio.sleep(self.ttl / 3)
            try:
                await lock.reacquire()  # type: ignore[attr-defined]
            except (LockError, RedisError, OSError) as exc:
                log.warning("fleet_lock_not_renewed", error=str(exc) or type(exc).__name__)


async def _release(lock: object) -> None:
    try:
        await lock.release()  # type: ignore[attr-defined]
    except (LockError, RedisError, OSError) as exc:
        log.warning("fleet_lock_not_released", error=str(exc) or type(exc).__name__)
