"""Running the emulator: build the world, load the state file, serve, stop, flush.

Owns: the lifecycle of one emulator (used by `enroller emulator`, the demo and the test
harness): start on a host and port (0 = any free port), report the real URL, stop cleanly and
write the state one last time. Must not parse command lines or install signal handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from emulator.app import build_app
from emulator.config import EmulatorOptions, load_world
from emulator.faults import FaultInjector
from emulator.persist import Persister
from emulator.ratelimit import RateLimiter
from emulator.routes.common import Emulator
from emulator.state import State
from emulator.stats import Stats

# Beyond the emulated latency: how long after a 429 a request may still have been on its way.
IN_FLIGHT_GRACE_S = 0.1
SHUTDOWN_GRACE_S = 3.0  # in-flight requests get this long to finish on stop
LOOP_WATCH_S = 0.005  # the loop watcher's tick: how finely a stalled loop is seen


def build_emulator(
    options: EmulatorOptions, clock: Callable[[], datetime] | None = None
) -> Emulator:
    """The emulator's parts, with the state file (if any) loaded over the configured world."""
    state = State(
        load_world(options.config),
        credits=options.credits,
        token_ttl=options.token_ttl,
        seed=options.seed,
        clock=clock,
        file_delay_ms=options.file_delay_ms,
        compute_delay_ms=options.compute_delay_ms,
    )
    persister = Persister(options.state_file, state.snapshot_json)
    saved = persister.load()
    if saved is not None:
        state.restore_json(saved)
    return Emulator(
        options=options,
        state=state,
        persister=persister,
        limiter=RateLimiter(
            options.rate_limit,
            options.burst,
            in_flight_grace_s=options.latency_ms / 1000 + IN_FLIGHT_GRACE_S,
        ),
        faults=FaultInjector(options.fault_rate, options.seed),
        stats=Stats(),
    )


class EmulatorServer:
    """One running emulator. `await start()`, read `.base_url`, `await stop()`."""

    def __init__(
        self, options: EmulatorOptions, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.options = options
        self.emulator = build_emulator(options, clock)
        self._runner: web.AppRunner | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.host = options.host
        self.port = options.port

    async def start(self) -> None:
        app = build_app(self.emulator)
        # No access log: it is noise in tests, and a log line must never carry a token.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_S
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.options.host, self.options.port)
        await site.start()
        address: Any = self._runner.addresses[0]
        self.host, self.port = address[0], int(address[1])
        if self.options.rate_limit > 0:  # only a rate limit cares when requests are seen
            self._watcher = asyncio.create_task(self._watch_loop())

    async def _watch_loop(self) -> None:
        """Measure how late the loop wakes: a stall bunches arrivals and empties the bucket."""
        stats = self.emulator.stats
        while True:
            due = time.monotonic() + LOOP_WATCH_S
            await asyncio.sleep(LOOP_WATCH_S)
            stats.loop_woke(max(0.0, time.monotonic() - due))

    @property
    def root_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish briefly, then write the state."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.emulator.persister.flush()
        self.emulator.audio_pool.shutdown(wait=False, cancel_futures=True)
