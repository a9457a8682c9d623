"""Durable state: atomic snapshot writes with group commit.

Owns: writing the state file (temp file in the same directory, fsync, rename, fsync of the
directory) and batching: every mutating request awaits `commit()`, which returns once a snapshot
taken *after* its change is on disk. Concurrent requests share one write, so durability costs
one fsync per burst, not per request. Must never know what the state means.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Persister:
    """Group-committing writer of one state file. `snapshot` is called on the event loop."""

    def __init__(self, path: Path | None, snapshot: Callable[[], bytes]) -> None:
        self.path = path
        self._snapshot = snapshot
        self._wanted = 0  # generation of the latest change
        self._written = 0  # generation known to be on disk
        self._cond: asyncio.Condition | None = None
        self._writer: asyncio.Task[None] | None = None
        self._error: Exception | None = None
        self.writes = 0

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def load(self) -> bytes | None:
        """The last committed snapshot, or None when there is none yet."""
        if self.path is None or not self.path.exists():
            return None
        return self.path.read_bytes()

    async def commit(self) -> None:
        """Return once every change made before this call is on disk; raise if writing failed."""
        if self.path is None:
            return
        if self._cond is None:
            self._cond = asyncio.Condition()
        self._wanted += 1
        target = self._wanted
        if self._writer is None or self._writer.done():
            self._error = None
            self._writer = asyncio.create_task(self._write_loop())
        async with self._cond:
            await self._cond.wait_for(lambda: self._written >= target or self._error is not None)
        if self._written < target and self._error is not None:
            raise self._error

    async def _write_loop(self) -> None:
        assert self.path is not None and self._cond is not None
        try:
            while self._written < self._wanted:
                generation = self._wanted
                data = self._snapshot()
                await asyncio.to_thread(atomic_write, self.path, data)
                self.writes += 1
                self._written = generation
                async with self._cond:
                    self._cond.notify_all()
        except Exception as exc:  # handed to every waiting request, which answers 500
            self._error = exc
        async with self._cond:
            self._cond.notify_all()

    async def flush(self) -> None:
        """Write the current state now (used at shutdown)."""
        if self.path is None:
            return
        await asyncio.to_thread(atomic_write, self.path, self._snapshot())
