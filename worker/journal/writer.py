"""Durable, group-committed appends to one job's journal file, and the healing of a torn tail.

Owns: `Journal` (a record is on disk, fsynced, before `append` returns; appends from many
enrollments are group-committed, so the fsync rate stays flat however many enrollments run at
once), the failure of such a write (`JournalWriteFailed`) and `heal_torn_tail`, which cuts a
crash's half-written last line off before the next append. The record types and reading a
journal back are `records.py`'s.
"""

from __future__ import annotations

import errno
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.to_thread
import structlog
from pydantic import BaseModel

from worker.base.errors import JobMustCheckpoint
from worker.base.fsutil import fsync_dir

log = structlog.get_logger(__name__)


class JournalWriteFailed(JobMustCheckpoint):
    """An append did not reach the disk (full disk, I/O error): the records it held are lost.

    Deliberately not an `OSError`: nobody may mistake it for a problem with an audio file. Once
    raised, the journal refuses every later append too, since a partial write may have left a
    fragment that a later record must never be glued to; the job stops and, on its next start,
    the torn tail is cut off (`heal_torn_tail`).
    """


_TAIL_CHUNK = 1 << 16


def heal_torn_tail(path: Path) -> int:
    """Cut a torn last line (a crash mid-append) off the journal; returns the bytes removed.

    Without this, the next append would be glued to the fragment and the line would become a
    corrupt one in the middle of the file (`JournalCorrupt`) after one more restart.
    """
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return 0
    try:
        size = os.fstat(fd).st_size
        end = size
        while end > 0:
            start = max(0, end - _TAIL_CHUNK)
            chunk = os.pread(fd, end - start, start)
            if end == size and chunk.endswith(b"\n"):
                return 0  # whole: the common case costs one small read
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                end = start + newline + 1
                break
            end = start
        os.ftruncate(fd, end)
        os.fsync(fd)
    finally:
        os.close(fd)
    log.warning("journal_torn_tail_truncated", path=str(path), bytes=size - end)
    return size - end


def write_and_fsync(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd`, then fsync it: the journal's one way to the disk."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    os.fsync(fd)


# How a batch reaches the disk (`Journal(write=...)`): a test counts or fails the writes.
JournalWrite = Callable[[int, bytes], None]


class Journal:
    """Durable, group-committed appends to one job's journal file."""

    def __init__(self, path: Path, *, write: JournalWrite = write_and_fsync) -> None:
        self.path = path
        self._write_batch = write
        self._fd: int | None = None
        self._pending: list[bytes] = []
        self._queued = 0  # sequence number of the last record queued
        self._flushed = 0  # sequence number of the last record on disk
        self._lock = anyio.Lock()
        self._broken: str | None = None  # why an earlier write failed; every append refuses
        self.kinds: Counter[str] = Counter()  # records appended by kind, for progress

    async def __aenter__(self) -> Journal:
        await anyio.to_thread.run_sync(self._open)
        return self

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        heal_torn_tail(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        fsync_dir(self.path.parent)

    async def __aexit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    async def append(self, *records: BaseModel) -> None:
        """Return once every given record is on disk; raise `JournalWriteFailed` otherwise.

        Group commit: whoever holds the lock writes every record queued so far. A waiter whose
        records were in a batch that failed raises too: `_flushed` only ever counts records
        that were fsynced, and after a failure nothing counts as flushed again.
        """
        self._refuse_if_broken()
        for record in records:
            self._pending.append(record.model_dump_json().encode() + b"\n")
            self.kinds[getattr(record, "kind", "")] += 1
        self._queued += len(records)
        mine = self._queued
        async with self._lock:
            self._refuse_if_broken()  # the holder before us failed: our records went with it
            if self._flushed >= mine:
                return  # an earlier holder wrote ours along with its own
            batch, self._pending = self._pending, []
            upto = self._queued
            try:
                await anyio.to_thread.run_sync(self._write, b"".join(batch))
            except OSError as exc:
                self._broken = f"journal write failed: {exc.strerror or exc}"
                log.error("journal_write_failed", path=str(self.path), error=self._broken)
                raise JournalWriteFailed(f"{self.path}: {self._broken}") from None
            self._flushed = upto

    def _refuse_if_broken(self) -> None:
        if self._broken is not None:
            raise JournalWriteFailed(f"{self.path}: {self._broken}; records not written")

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            raise OSError(errno.EBADF, "journal used outside its context")
        self._write_batch(self._fd, data)
