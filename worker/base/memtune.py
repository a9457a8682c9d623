"""glibc's malloc arenas capped for the worker process, so its memory stops growing sooner.

Owns one call made at `enroller run` start, before any thread exists. glibc gives every thread
that allocates under contention its own heap ("arena", up to 8 per core); the worker's threads
(preflight, journal, index, file locks: anyio's pool of up to 40) each fill one, and freed
memory stays resident in each. Measured on a 10 000-enrollment run
(`benchmarks/memory_run.py`): 127.5 MB with glibc's default, 112.7 MB with two arenas, at the
same CPU time and wall time. Two, not one: the preflight threads decode at once.

Set `MALLOC_ARENA_MAX` (or `GLIBC_TUNABLES`) to choose otherwise: then nothing is changed
here. Off glibc (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_ARENA_MAX = -8  # glibc's <malloc.h>
ARENAS = 2


def cap_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap this process's malloc arenas; whether the cap was set (False: left as it is)."""
    if not sys.platform.startswith("linux"):
        return False
    if "MALLOC_ARENA_MAX" in os.environ or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False  # the operator chose
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    try:
        return bool(mallopt(M_ARENA_MAX, arenas))  # 1 on success; musl's stub returns 0
    except OSError:
        return False
