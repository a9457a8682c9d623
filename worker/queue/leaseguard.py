"""The lease guard: no request leaves a job whose lease may have lapsed.

Owns: when a job may still trust its lease, by its own monotonic clock. The heartbeat renews
every `lease_ttl / 3`; another worker takes a job over once the lease has stood unchanged for
`lease_ttl` by *its* clock. A process frozen past that (SIGSTOP, a paused VM, a long GC stall)
wakes with requests already waiting for their send time, and each would otherwise go out
before the heartbeat's next look finds the lease gone: a second writer on another worker's job.

So a sender asks first. A lease renewed less than `TRUST_FRACTION` of the TTL ago is trusted;
an older one is not, and the sender wakes the heartbeat and waits for its answer: a renewal
(the lease held, the request goes) or a lost lease (the heartbeat raises, the job is cancelled,
the request never leaves). In normal running the renewal is at most a third of the TTL old, so
no sender ever waits.

The sender asks through the send gate it is given: the job boundary (`job/boundary.py`) hands
`LeaseGuard.confirmed` to the job's view of the client (`ApiClient.gated`), whose governor slot
awaits it before each request leaves; the API layer never imports this module. It never touches
the lease file itself (`queue/lease.py` does) and never decides what a lost lease means for the
job (`boundary.py` does).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio

# A renewal older than this share of the TTL is not trusted: others take over at 1.0, renewals
# come every 1/3, and the gap leaves room for a slow disk or a loaded event loop.
TRUST_FRACTION = 2 / 3


class LeaseGuard:
    """One job's trust in its lease, fed by its heartbeat and asked by every sender."""

    def __init__(self, lease_ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.trust_for = lease_ttl * TRUST_FRACTION
        self._clock = clock
        self._renewed_at = clock()  # the claim (or takeover) has just written the lease
        self._asked = anyio.Event()
        self._renewal = anyio.Event()

    def trusted(self) -> bool:
        """Whether the last renewal is recent enough that no other worker can have the job."""
        return self._clock() - self._renewed_at < self.trust_for

    def renewed(self, started_at: float) -> None:
        """The heartbeat wrote the lease; `started_at` is when the write began (the safe end)."""
        self._renewed_at = max(self._renewed_at, started_at)
        self._asked = anyio.Event()
        answered, self._renewal = self._renewal, anyio.Event()
        answered.set()

    async def confirmed(self) -> None:
        """Return once the lease is trusted; while it is not, have the heartbeat renew now.

        Bounded by the heartbeat: it either renews or raises LeaseLost, which cancels the job
        and so this wait with it.
        """
        while not self.trusted():
            renewal = self._renewal
            self._asked.set()
            await renewal.wait()

    async def wait_asked(self, at_most: float) -> None:
        """The heartbeat's sleep: `at_most` seconds, or less when a sender needs a renewal."""
        with anyio.move_on_after(at_most):
            await self._asked.wait()
