"""Asynchronous processing, as the real service may do it (api-contract.md §5).

Owns: when a received file or an accepted compute *settles*. With `--file-delay-ms N` an audio
that got its file still reads `avaitingFile` for N ms; with `--compute-delay-ms N` a voiceprint
whose compute was accepted still reads `computable` for N ms. Off (0) by default: everything
settles inside the request, as before.

Pure: a min-heap of due events over an injected "now"; no timers, no tasks. `State` asks for
the events that are due whenever a request reads the world, so an emulator that nobody calls
does no work, and a test that moves its clock sees every delay pass at once.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class Kind(StrEnum):
    FILE = "file"  # an audio's file becomes available / notAvailable
    COMPUTE = "compute"  # a voiceprint becomes computed (and its usage record is written)


@dataclass(frozen=True, order=True)
class Due:
    """One pending settlement: `key` is the audio handle, or `identity/voiceprint`."""

    at: datetime
    seq: int
    kind: Kind = field(compare=False)
    space: str = field(compare=False)  # "owner/handle"
    key: str = field(compare=False)


class Processing:
    """The delays of one emulator and the settlements they leave pending."""

    def __init__(self, file_delay_ms: float = 0.0, compute_delay_ms: float = 0.0) -> None:
        self.delays = {
            Kind.FILE: timedelta(milliseconds=file_delay_ms),
            Kind.COMPUTE: timedelta(milliseconds=compute_delay_ms),
        }
        self._heap: list[Due] = []
        self._seq = 0

    def delayed(self, kind: Kind) -> bool:
        """Whether this kind of work settles later (else inside the request)."""
        return self.delays[kind] > timedelta(0)

    def schedule(self, kind: Kind, space: str, key: str, now: datetime) -> datetime:
        """Record work accepted at `now`; returns when it settles."""
        at = now + self.delays[kind]
        self.push(Due(at, self._next_seq(), kind, space, key))
        return at

    def push(self, due: Due) -> None:
        heapq.heappush(self._heap, due)

    def due(self, now: datetime) -> Iterator[Due]:
        """Pop every settlement due at `now`, oldest first."""
        while self._heap and self._heap[0].at <= now:
            yield heapq.heappop(self._heap)

    def rebuild(self, pending: Iterable[tuple[datetime, Kind, str, str]]) -> None:
        """Start over from what a restored snapshot still has pending."""
        self._heap = []
        for at, kind, space, key in pending:
            self.push(Due(at, self._next_seq(), kind, space, key))

    def __len__(self) -> int:
        return len(self._heap)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq
