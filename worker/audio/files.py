"""Opening audio files safely, once, and streaming exactly the bytes that were hashed.

Owns: how the worker opens an operator's audio file (regular files only, never blocking, never
through a symlink swapped in after preflight) and the upload body that re-checks the file's
size and sha256 while it streams. A file that changed since preflight aborts its upload before
the last byte is sent, so the server never receives a complete body that is not the file the
report names. It knows nothing of models, manifests or the API.
"""

from __future__ import annotations

import errno
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import anyio.to_thread

from worker.base.errors import EnrollmentFailed
from worker.base.fsutil import NotRegularFile, open_regular, sha256_stream

CHUNK_BYTES = 1 << 20


class AudioUnreadable(EnrollmentFailed):
    """A file that cannot be inspected or sent; the message is the reason, for a person."""


class AudioChanged(AudioUnreadable):
    """The file's bytes are no longer the ones preflight hashed: the upload was aborted."""


def os_reason(exc: OSError) -> str:
    """An `OSError` on an audio file, as a person reads it."""
    if exc.errno == errno.EISDIR:
        return "is a directory, not an audio file"
    if isinstance(exc, NotRegularFile):
        return f"is {exc.strerror}"
    if exc.errno == errno.ENOENT:
        return "does not exist"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "cannot be read (permission denied)"
    if exc.errno == errno.ELOOP:
        return "is a symlink loop"
    return f"cannot be read ({exc.strerror or exc})"


def open_audio(path: Path) -> IO[bytes]:
    """Open an audio file for reading: a regular file only, or `AudioUnreadable` saying why."""
    try:
        return open_regular(path)
    except OSError as exc:
        raise AudioUnreadable(os_reason(exc)) from None


@dataclass
class VerifiedUpload:
    """An upload body read from `path` that must be `size` bytes with sha256 `sha256`.

    `chunks()` holds the last chunk back until the end of the file is reached and checked, so a
    mismatch raises before the body is complete (the request carries an exact Content-Length,
    so the server sees a truncated body, never a whole wrong one). `failure` keeps the reason
    for the caller, whatever the HTTP library makes of the aborted request.
    """

    path: Path
    size: int
    sha256: str
    chunk_bytes: int = CHUNK_BYTES
    failure: AudioUnreadable | None = field(default=None, init=False)
    # Files `chunks()` has open: `close()` shuts them even when the HTTP library abandons the
    # body mid-stream (a dropped connection), instead of leaving that to the garbage collector.
    _open_files: set[IO[bytes]] = field(default_factory=set, init=False, repr=False)

    @classmethod
    def from_path(cls, path: Path) -> VerifiedUpload:
        """Measure and hash `path` now (blocking), for callers that had no preflight."""
        with open_audio(path) as fh:
            sha, size = sha256_stream(fh)
        return cls(path=path, size=size, sha256=sha)

    async def chunks(self) -> AsyncIterator[bytes]:
        # Opened here, not in a thread: `open_regular` never blocks (O_NONBLOCK, a regular
        # file only), and a thread's open whose caller is cancelled meanwhile would hand back
        # a file nobody closes. Reads, which may take long, do go to a thread.
        fh = self._open()
        self._open_files.add(fh)
        try:
            digest = hashlib.sha256()
            sent = 0
            held: bytes | None = None
            while True:
                chunk = await anyio.to_thread.run_sync(fh.read, self.chunk_bytes)
                if not chunk:
                    break
                sent += len(chunk)
                if sent > self.size:
                    self._fail(f"grew since preflight (more than {self.size} bytes)")
                digest.update(chunk)
                if held is not None:
                    yield held
                held = chunk
            if sent != self.size:
                self._fail(f"changed since preflight ({sent} bytes, {self.size} expected)")
            if digest.hexdigest() != self.sha256:
                self._fail("changed since preflight (its sha256 differs); upload aborted")
            if held is not None:
                yield held
        finally:
            self._open_files.discard(fh)
            fh.close()

    def close(self) -> None:
        """Close whatever an abandoned `chunks()` still holds open (idempotent)."""
        while self._open_files:
            self._open_files.pop().close()

    def _open(self) -> IO[bytes]:
        try:
            return open_audio(self.path)
        except AudioUnreadable as exc:
            self.failure = exc
            raise

    def _fail(self, reason: str) -> None:
        self.failure = AudioChanged(reason)
        raise self.failure
