"""Who may touch what at once: per-file locks in a process, per-identity locks across processes.

Owns locks and nothing else: two kinds, and `EnrollmentLocks`, which combines them per
voiceprint (a cross-process lock per identity, then an in-process lock per voiceprint):

- `AudioLocks` (one per process): one holder per (owner, space, identity, sha256), around
  finding, creating and uploading the audio for one file, plus what the process learned about
  it. Two voiceprints of one identity that share a file then get one audio, uploaded once: the
  second holder finds it here, even when its own view says "absent" because its identity was
  created a moment ago.
- `FileLocks`: an `fcntl.flock` lock file per key under `<queue>/.locks/`, for workers sharing
  a queue directory. The kernel drops the lock when its process dies, so a crash never leaves
  a stale lock. Tasks of one process share one hold (the in-process locks order them), so the
  file lock only orders processes. The worker keys it by identity (owner/space/identity): that
  covers every voiceprint of the identity, and the files its voiceprints share, which a
  per-voiceprint lock across processes would not.

Lock files are removed by their last holder; a waiter that then gets the lock on the removed
file notices (the path names another inode, or none) and tries again. Acquiring polls with
`LOCK_NB` and a short paced sleep, so a waiting task can always be cancelled (shutdown).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import anyio
import anyio.to_thread

from worker.base.lru import LruCache
from worker.enrollment.view import AudioSeen

LOCKS_DIR = ".locks"
POLL_FIRST_S = 0.02
POLL_CAP_S = 0.5
REMEMBERED_AUDIOS = 10_000  # what a process keeps about audios it touched (LRU)


@dataclass
class _Entry:
    gate: anyio.Lock = field(default_factory=anyio.Lock)
    users: int = 0
    fd: int | None = None


class KeyedLocks:
    """In-process: one holder per key; a key's lock exists only while someone wants it."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        entry = self._entries.setdefault(key, _Entry())
        entry.users += 1
        try:
            async with entry.gate:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]


class AudioLocks(KeyedLocks):
    """In-process locks per `owner/space/identity/sha256`, and the audio each one guards."""

    def __init__(self, remember: int = REMEMBERED_AUDIOS) -> None:
        super().__init__()
        self._known: LruCache[str, AudioSeen] = LruCache(remember)

    def known(self, key: str) -> AudioSeen | None:
        """The audio this process last saw for the file (under the lock), if it remembers."""
        return self._known.get(key)

    def forget(self, key: str, handle: str) -> None:
        """The server has no audio `handle` any more: stop handing it out (unless replaced)."""
        seen = self._known.peek(key)
        if seen is not None and seen.handle == handle:
            del self._known[key]

    def learn(self, key: str, seen: AudioSeen) -> None:
        self._known[key] = seen


# One per process: per job or per enrollment it would lock nothing.
PROCESS_AUDIO_LOCKS = AudioLocks()


class FileLocks:
    """Cross-process locks: `<directory>/<sha256(key)[:32]>.lock`, held with `flock`.

    `on_refused(path)` is told of each attempt that found the lock held by another process
    (a test waits on it to know a waiter is waiting).
    """

    def __init__(
        self, directory: Path, *, on_refused: Callable[[Path], None] | None = None
    ) -> None:
        self.directory = directory
        self._entries: dict[str, _Entry] = {}
        self._on_refused = on_refused

    @classmethod
    def for_queue(cls, queue_dir: Path) -> FileLocks:
        return cls(queue_dir / LOCKS_DIR)

    def path(self, key: str) -> Path:
        return self.directory / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".lock")

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold `key` against other processes; tasks of this process share the hold."""
        entry = self._entries.setdefault(key, _Entry())
        entry.users += 1
        try:
            async with entry.gate:
                if entry.fd is None:
                    entry.fd = await self._acquire(self.path(key))
            yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]
                if entry.fd is not None:
                    # Shielded: a cancelled holder (lease lost, grace over) must still let go,
                    # or the job's next run waits on its own lock for as long as we live.
                    with anyio.CancelScope(shield=True):
                        await anyio.to_thread.run_sync(_release, self.path(key), entry.fd)

    async def _acquire(self, path: Path) -> int:
        delay = POLL_FIRST_S
        while True:
            fd = await anyio.to_thread.run_sync(_try_lock, path)
            if fd is not None:
                return fd
            if self._on_refused is not None:
                self._on_refused(path)
            await anyio.sleep(delay)
            delay = min(POLL_CAP_S, delay * 2)


def _try_lock(path: Path) -> int | None:
    """The locked descriptor of `path`, or None when another process holds it (blocking I/O)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    try:
        current = os.stat(path)
    except FileNotFoundError:
        current = None
    if current is None or current.st_ino != os.fstat(fd).st_ino:
        os.close(fd)  # the holder before us removed this file: lock the one there now
        return None
    return fd


def _release(path: Path, fd: int) -> None:
    """Remove the lock file while still holding it, then let go (blocking I/O)."""
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    finally:
        os.close(fd)


class CrossProcessLocks(Protocol):
    """Locks that order processes: `FileLocks`, or a fleet's (Redis) locks wrapping them."""

    def hold(self, key: str) -> contextlib.AbstractAsyncContextManager[None]: ...


class EnrollmentLocks:
    """Who may work on a voiceprint: one task, in one process, at a time.

    `hold("owner/space/identity/voiceprint")` takes the identity's cross-process lock (key
    `owner/space/identity`; `FileLocks` shares it among the tasks of this process), then the
    voiceprint's in-process lock. Two manifests that ask for one voiceprint thus take turns
    instead of mixing their audios into it, in one process or across several; the second then
    sees the first one's result. `cross` may be replaced (by a fleet's locks) before jobs run.
    """

    def __init__(self, cross: CrossProcessLocks | None = None) -> None:
        self.cross = cross
        self._voiceprints = KeyedLocks()

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        identity = key.rsplit("/", 1)[0]
        async with contextlib.AsyncExitStack() as stack:
            if self.cross is not None:
                await stack.enter_async_context(self.cross.hold(identity))
            await stack.enter_async_context(self._voiceprints.hold(key))
            yield
