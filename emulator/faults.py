"""Fault injection for `--fault-rate`: which requests fail, how, and when.

Owns: the seeded choice of a fault per request. Pure (a seeded `random.Random`); the app
middleware carries the fault out.

Deliberate choice [ours]: a fault on a request that changes state (POST, PUT, PATCH, DELETE)
happens *after* the effect half of the time: the server did the work, stored it, then answered
500 or dropped the connection. That is the real "outcome unknown" a client meets in production
(a create that timed out may have happened), and the worker must reconcile, not blindly repeat.
503 is always answered *before* any effect: it means "not processed, try again", as a load
balancer or an overloaded service would say it. Reads fail only before (they have no effect).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class FaultKind(StrEnum):
    ERROR_500 = "500"  # internal error
    ERROR_503 = "503"  # unavailable: never after an effect
    DROP = "drop"  # the connection is closed with no response at all


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    after_effect: bool  # True: the handler ran and its effect is kept; only the answer is lost


class FaultInjector:
    """Decides per request whether and how to fail; same seed and order, same faults."""

    def __init__(self, rate: float, seed: int | None = None) -> None:
        self.rate = rate
        self._rng = random.Random(seed)

    def decide(self, method: str) -> Fault | None:
        if self.rate <= 0 or self._rng.random() >= self.rate:
            return None
        kind = self._rng.choice(list(FaultKind))
        after = (
            method.upper() in MUTATING_METHODS
            and kind is not FaultKind.ERROR_503
            and self._rng.random() < 0.5
        )
        return Fault(kind, after)
