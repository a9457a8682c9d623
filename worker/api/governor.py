"""The shared rate budget: one governor per process, every request passes through it.

Owns: pacing (a token bucket that hands out evenly spaced send times), the cap on requests in
flight, the separate cap on concurrent uploads, the global pause after a 429 + Retry-After, the
"credits exhausted" state that computes check, and the counters later exported as metrics.
Must never send a request or know about HTTP: the client tells it what happened.

The arithmetic is a synchronous core (`TokenBucket`, an injectable clock, no sleeping) inside a
thin async shell (`Governor`), in the manner of anyio's memory streams, so that the rate rules
are unit-tested as plain function calls.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import anyio

from worker.api.errors import CreditsExhausted
from worker.config.settings import setting_default

if TYPE_CHECKING:
    from worker.config.settings import Settings

Clock = Callable[[], float]
# Share of the configured rate left unused by a worker (Governor.from_settings): 1 %.
PACING_MARGIN = 0.01
Sleep = Callable[[float], Awaitable[None]]


class SendGate(Protocol):
    """Awaited by a request holding its slot, just before it leaves; returns when it may go.

    A job passes its lease guard's `confirmed` (worker/queue/leaseguard.py): a thawed process
    sends nothing on a lease it may have lost. The gate may wait, or raise to stop the request.
    """

    def __call__(self) -> Awaitable[None]: ...


class SharedBudget(Protocol):
    """The fleet's budget for one API account (worker/fleet/budget.py), when there is a fleet.

    The governor keeps its caps and its own 429 pause; the send times come from the shared
    budget, and what this worker learns (a 429, a credits refusal) goes to the whole fleet.
    """

    credits_message: str | None  # the fleet's credits pause, as last seen; None: billed may go
    fleet_size: int  # workers seen in the fleet (its heartbeats)
    degraded: bool  # Redis unreachable: this worker goes on alone at its share

    async def wait_turn(self) -> None: ...

    def pause(self, delay: float) -> None: ...

    def mark_credits(self, message: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Reservation:
    """A send time handed out by the bucket; void if a pause began after it was handed out."""

    at: float
    epoch: int


class TokenBucket:
    """Evenly spaced send times for a rate and a burst (GCRA form of the token bucket). Pure.

    Each `reserve(now)` returns the next slot: with burst 1 the slots are exactly 1/rate apart,
    so the server sees an even stream rather than bursts followed by silence; after an idle
    spell up to `burst` slots are granted at once. `pause(until)` voids every slot handed out so
    far (their holders must reserve again) and starts the schedule afresh at `until`.

    Late holders: slots are handed out ahead, and their holders sleep until them; when the
    event loop was busy, every slot it slept through would wake at once and go out together
    (emptying the server's bucket for a whole-second 429). So a holder woken more than
    `catch_up` slots late (`late()`) does not send: `restart(now)` voids every slot handed out
    and starts the schedule afresh from now, and each holder reserves again. At most
    `catch_up` + 1 late sends thus go back to back.

    Adaptive, proportionately: `throttled(now, in_flight=n)` — the server said 429 although we
    kept to our rate — lowers the rate by 1/n of the episode's starting rate per 429, where n is
    how many requests were in flight when the episode began: the answers of those requests are
    the episode's evidence, and the share of them refused is the share by which we are too
    fast (a client at twice the server's limit sees half refused and halves; one 429 of thirty
    in flight, a timing accident, costs 3 %). Never more than `decrease` per episode; each
    `succeeded()` adds back `increase` × the configured rate.
    """

    def __init__(
        self,
        rate: float,
        burst: int = setting_default("burst"),
        *,
        adaptive: bool = True,
        decrease: float = 0.5,
        increase: float = 0.005,
        min_rate: float | None = None,
        catch_up: int = 6,  # 20 ms at 300/s; at 3, 261 restarts in a loaded R=300 run
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.max_rate = float(rate)
        self.rate = float(rate)
        self.burst = burst
        self.adaptive = adaptive
        self.decrease = decrease
        self.increase = increase
        self.min_rate = min_rate if min_rate is not None else max(self.max_rate / 20, 0.1)
        self.catch_up = catch_up
        self.paused_until = -math.inf
        self.epoch = 0
        self._tat = -math.inf  # theoretical arrival time of the next request
        self._guard_until = -math.inf  # the throttle episode lasts until then
        self._episode_rate = self.rate  # the rate when the episode began
        self._episode_step = 0.0  # rate taken off per 429 in this episode

    def reserve(self, now: float) -> Reservation:
        """Take the next send time (≥ now, ≥ the end of any pause)."""
        interval = 1.0 / self.rate
        start = max(now, self.paused_until)
        tat = max(self._tat, start)
        at = max(start, tat - (self.burst - 1) * interval)
        self._tat = tat + interval
        return Reservation(at, self.epoch)

    def late(self, reservation: Reservation, now: float) -> bool:
        """Whether a holder woken at `now` is too late to send on this reservation."""
        return now - reservation.at > self.catch_up / self.rate

    def restart(self, now: float) -> None:
        """Void every slot handed out; the schedule starts again at `now` (after a stall)."""
        self.epoch += 1
        self._tat = max(now, self.paused_until)

    def valid(self, reservation: Reservation) -> bool:
        """Whether a reservation still holds (no pause began since it was made)."""
        return reservation.epoch == self.epoch

    def pause(self, until: float) -> bool:
        """Hold every request until `until`. Returns whether this extended the pause."""
        if until <= self.paused_until:
            return False
        self.paused_until = until
        self.epoch += 1
        self._tat = until  # slots handed out before are void; the schedule restarts here
        return True

    def throttled(self, now: float, retry_after: float = 0.0, *, in_flight: int = 0) -> bool:
        """Record a 429 with Retry-After; lower the rate in proportion. Returns if lowered.

        `in_flight`: requests sent and unanswered when this answer came (this one excluded).
        """
        if not self.adaptive:
            return False
        if now >= self._guard_until:
            # A new episode. The answers to requests already in flight arrive within about
            # one pause: they belong to it.
            self._guard_until = now + max(1.0, retry_after)
            self._episode_rate = self.rate
            self._episode_step = self.rate / max(1, in_flight + 1)
        floor = max(self.min_rate, self._episode_rate * self.decrease)
        if self.rate <= floor:
            return False
        self.rate = max(floor, self.rate - self._episode_step)
        return True

    def succeeded(self) -> None:
        """Record a request the server accepted; creep back towards the configured rate."""
        if self.adaptive and self.rate < self.max_rate:
            self.rate = min(self.max_rate, self.rate + self.increase * self.max_rate)


@dataclass
class RequestMeter:
    """Requests sent on behalf of one unit of work (a job), retries included.

    Given to the job's view of the client (`ApiClient.gated(gate, meter)`): every request sent
    through that view is counted here, so concurrent jobs sharing one governor are counted
    apart.
    """

    requests: int = 0


@dataclass(slots=True)
class GovernorStats:
    """Counters for metrics. Monotonic except the `*_now` gauges and `rate`."""

    requests: int = 0  # requests let through (each attempt counts)
    throttled: int = 0  # 429 with Retry-After
    credits_refused: int = 0  # 429 "not enough credits", from the server or refused locally
    retries: int = 0  # resends after a transient failure (not after 429 or 401)
    renewals: int = 0  # credentials sign-ins after a 401
    wait_seconds: float = 0.0  # total time requests spent waiting for a slot or a pause
    restarts: int = 0  # schedules restarted because the loop woke a holder too late
    in_flight_now: int = 0
    uploads_now: int = 0
    rate: float = 0.0  # current pacing rate (lower than configured after 429s)


class Governor:
    """One per process, shared by every request of every job.

    `async with governor.slot(upload=...)` around each attempt: it waits for the caps (uploads
    first, then in-flight), then for the request's send time; the caller sends inside the block.
    The caps are taken before the send time so that a slot is never spent waiting on a cap.
    """

    def __init__(
        self,
        rate: float,
        burst: int = setting_default("burst"),
        *,
        max_in_flight: int = setting_default("max_in_flight"),
        max_uploads: int = setting_default("max_uploads"),
        adaptive: bool = True,
        margin: float = 0.0,
        credits_recheck: float = setting_default("credits_recheck"),
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        if not 0 <= margin < 1:
            raise ValueError("margin must be in [0, 1)")
        self.configured_rate = rate
        # Paced a hair under the limit, the server's bucket drifts back to full between
        # timing accidents (its clock is not ours) instead of wandering down to empty.
        self.bucket = TokenBucket(rate * (1 - margin), burst, adaptive=adaptive)
        self.max_in_flight = max_in_flight
        self.max_uploads = max_uploads
        self._in_flight = anyio.Semaphore(max_in_flight)
        self._uploads = anyio.Semaphore(max_uploads)
        self._clock = clock
        self._sleep = sleep
        self._credits: CreditsExhausted | None = None
        self._credits_since = 0.0
        # Routes the server has billed (answered a credits 429): compute, plus any other.
        self._billed: set[str] = set()
        # After this long, one compute may ask again: a long-lived worker notices a top-up
        # without a restart, at the cost of one refused request per interval.
        self.credits_recheck = credits_recheck
        self.stats = GovernorStats(rate=self.bucket.rate)
        self.shared: SharedBudget | None = None  # set in fleet mode (ENROLLER_REDIS_URL)

    @classmethod
    def from_settings(cls, settings: Settings) -> Governor:
        return cls(
            settings.rate_limit,
            settings.burst,
            max_in_flight=settings.max_in_flight,
            max_uploads=settings.max_uploads,
            margin=PACING_MARGIN,
            credits_recheck=settings.credits_recheck,
        )

    # --- pacing -------------------------------------------------------------------------

    async def wait_turn(self) -> None:
        """Sleep until this request's send time; take a new one if a pause voided it."""
        started = self._clock()
        if self.shared is not None:
            # A 429 seen here holds this worker at once; the fleet learns it from the budget.
            hold = self.bucket.paused_until - started
            if hold > 0:
                await self._sleep(hold)
            await self.shared.wait_turn()
            self.stats.wait_seconds += self._clock() - started
            return
        while True:
            now = self._clock()
            reservation = self.bucket.reserve(now)
            if reservation.at > now:
                await self._sleep(reservation.at - now)
            if not self.bucket.valid(reservation):
                continue  # a pause or a restart voided it
            now = self._clock()
            if self.bucket.late(reservation, now):
                self.bucket.restart(now)  # the loop stalled: re-space, don't send the backlog
                self.stats.restarts += 1
                continue
            break
        self.stats.wait_seconds += self._clock() - started

    @asynccontextmanager
    async def slot(
        self,
        *,
        upload: bool = False,
        gate: SendGate | None = None,
        meter: RequestMeter | None = None,
    ) -> AsyncIterator[None]:
        """Hold an in-flight place (and an upload place) while one request is sent.

        `gate`, if given, is awaited once the send time has come, before the request counts
        as sent: the sender's own last word on whether it may still go (see `SendGate`).
        `meter`, if given, counts the request for the unit of work that sent it.
        """
        async with AsyncExitStack() as stack:
            if upload:
                await stack.enter_async_context(self._uploads)
                self.stats.uploads_now += 1
                stack.callback(self._upload_done)
            await stack.enter_async_context(self._in_flight)
            await self.wait_turn()
            if gate is not None:
                await gate()  # e.g. a thawed job sends nothing on a lease it may have lost
            self.stats.requests += 1
            if meter is not None:
                meter.requests += 1
            self.stats.in_flight_now += 1
            stack.callback(self._request_done)
            yield

    def _upload_done(self) -> None:
        self.stats.uploads_now -= 1

    def _request_done(self) -> None:
        self.stats.in_flight_now -= 1

    # --- what the server said -------------------------------------------------------------

    def throttled(self, retry_after: float | None) -> None:
        """A 429 with Retry-After: every request waits until then; pacing slows down."""
        now = self._clock()
        delay = retry_after if retry_after is not None else 1.0 / self.bucket.rate
        self.stats.throttled += 1
        self.bucket.pause(now + delay)
        if self.shared is not None:
            self.shared.pause(delay)
        self.bucket.throttled(now, delay, in_flight=self.stats.in_flight_now)
        self.stats.rate = self.bucket.rate

    def succeeded(self) -> None:
        self.bucket.succeeded()
        self.stats.rate = self.bucket.rate

    def retried(self) -> None:
        self.stats.retries += 1

    def renewed(self) -> None:
        self.stats.renewals += 1

    # --- credits ----------------------------------------------------------------------------

    @property
    def credits_exhausted(self) -> bool:
        shared = self.shared.credits_message if self.shared is not None else None
        if shared is not None and self._credits is None:
            self._credits = CreditsExhausted(f"{shared} (another worker of the fleet)", sent=False)
            self._credits_since = self._clock()
        if (
            self._credits is not None
            and self._clock() - self._credits_since >= self.credits_recheck
        ):
            self._credits = None  # time to ask the server again
        return self._credits is not None

    def mark_credits_exhausted(self, error: CreditsExhausted) -> None:
        """Remember a credits 429 so that every later billed call is refused without a request.

        The call's route joins the billed ones: whichever call the server refused for credits
        (an upload, a create…) pauses with the computes, instead of being re-sent forever.
        """
        self.stats.credits_refused += 1
        if self.shared is not None and error.sent:
            self.shared.mark_credits(error.message)
        if error.route:
            self._billed.add(error.route)
        if self._credits is None:
            self._credits = error
            self._credits_since = self._clock()

    def billed(self, route: str) -> bool:
        """Whether the server has refused this route for credits before (besides compute)."""
        return route in self._billed

    def check_credits(self) -> None:
        """Raise `CreditsExhausted` (not sent) if billed calls are paused; called before one."""
        if self.credits_exhausted:
            assert self._credits is not None
            self.stats.credits_refused += 1
            raise CreditsExhausted(
                f"computes paused: {self._credits.message}",
                sent=False,
                method=self._credits.method,
                route=self._credits.route,
                attempts=0,
            )
