"""Test-only crash points: kill this process at a named instant, as `kill -9` would.

Owns: one environment variable, `ENROLLER_TEST_CRASH_AT`, read once at import. Unset (always, in
production) every `crash_point` is a no-op costing one comparison. Set to `name` it SIGKILLs the
process the first time `crash_point(name)` runs; `name:N` on the N-th time. Tests use it to
prove what survives a crash that no `except` can catch (the poison-pill counter, the finishing
steps of a job). It is read here, not through `Settings`, because it is not a setting: nothing
an operator should ever turn on.

Points in use: `job.started` (start recorded, before the manifest is read), `job.enrolling`
(first enrollment handed to the runners), `job.reported` (reports written, `JobFinished` not
yet journaled), `job.finished_record` (`JobFinished` journaled, manifest not yet in done/),
`job.done` (manifest in done/, job directory removed).
"""

from __future__ import annotations

import os
import signal

ENV = "ENROLLER_TEST_CRASH_AT"


def _parse(spec: str) -> tuple[str, int]:
    name, _, count = spec.partition(":")
    return name, int(count) if count.isdigit() and int(count) > 0 else 1


_TARGET: tuple[str, int] | None = _parse(os.environ[ENV]) if os.environ.get(ENV) else None
_hits: dict[str, int] = {}


def crash_point(name: str) -> None:
    """SIGKILL this process here if the environment asks for it (tests only)."""
    if _TARGET is None or _TARGET[0] != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= _TARGET[1]:
        os.kill(os.getpid(), signal.SIGKILL)
