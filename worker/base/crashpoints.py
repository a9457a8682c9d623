"""Test-only fault points: crash or fail this process at a named instant.

Owns: two environment variables, read once at import. Unset (always, in production) every
`crash_point` is a no-op costing one comparison.

- `ENROLLER_TEST_CRASH_AT=name[:N][@scope]` SIGKILLs the process, as `kill -9` or the OOM
  killer would, the N-th time (default the first) `crash_point(name)` runs, counting only
  calls whose `scope` (a job's manifest name) contains `scope`.
- `ENROLLER_TEST_RAISE_AT=name[:N][@scope]` raises `InjectedFault` there instead: an exception
  no code expects, as a parser bug would be.

Tests use them to prove what survives a crash no `except` can catch (the poison-pill counter,
the finishing steps of a job) and what a job's fault boundary contains. They are read here, not
through `Settings`, because they are not settings: nothing an operator should ever turn on.

Points in use: `job.started` (a start recorded and found not poisonous, before the manifest is
read), `job.enrolling` (an enrollment handed to the runners), `job.reported` (reports written,
`JobFinished` not yet journaled), `job.finished_record` (`JobFinished` journaled, manifest not
yet in done/), `job.done` (manifest in done/, job directory removed); `derive.encoding` (each
decoded block of a channel, mix or conversion being written), `derive.written` (a derived FLAC
complete, not yet renamed), `derive.discard` (a derived file about to be deleted: its upload
confirmed or its enrollment ended); `objects.streaming` (each chunk of an S3 download
written), `objects.fetched` (an S3 download complete and renamed, not yet handed to preflight).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

CRASH_ENV = "ENROLLER_TEST_CRASH_AT"
RAISE_ENV = "ENROLLER_TEST_RAISE_AT"


class InjectedFault(RuntimeError):
    """Raised at a test's request (`ENROLLER_TEST_RAISE_AT`): an exception nobody expects."""


@dataclass(frozen=True)
class _Target:
    name: str
    hit: int
    scope: str

    @classmethod
    def parse(cls, spec: str | None) -> _Target | None:
        if not spec:
            return None
        point, _, scope = spec.partition("@")
        name, _, count = point.partition(":")
        return cls(name, int(count) if count.isdigit() and int(count) > 0 else 1, scope)


_CRASH = _Target.parse(os.environ.get(CRASH_ENV))
_RAISE = _Target.parse(os.environ.get(RAISE_ENV))
_hits: dict[tuple[str, str], int] = {}


def _due(target: _Target | None, kind: str, name: str, scope: str) -> bool:
    if target is None or target.name != name or target.scope not in scope:
        return False
    key = (kind, name)
    _hits[key] = _hits.get(key, 0) + 1
    return _hits[key] == target.hit


def crash_point(name: str, scope: str = "") -> None:
    """Crash or fail here if a test's environment asks for it; otherwise nothing."""
    if _due(_CRASH, "crash", name, scope):
        os.kill(os.getpid(), signal.SIGKILL)
    if _due(_RAISE, "raise", name, scope):
        raise InjectedFault(f"fault injected at {name}")
