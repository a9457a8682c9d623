"""Crash-safe file writes shared by every module that puts a file where someone else reads it.

Owns: the one way the worker replaces a file: write a temporary file in the same directory,
fsync it, rename it over the target, fsync the directory. A reader (another worker, `enroller
status`, an operator's script) therefore sees the old file or the new one, never a torn one,
and after a power cut the rename is on disk too. It never decides *where* files go; that is the
caller's business (queue layout, report names).

Temporary files are named `.<name>.<random>.tmp`: a dot-name ending in `.tmp`, which the queue's
dropper contract ignores, so a half-written retry manifest in `inbox/` is never claimed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from worker.base.errors import JobMustFail
from worker.base.text import encode_text

HASH_CHUNK_BYTES = 1 << 20  # what a file hash reads at a time: memory stays flat for any size


class NotRegularFile(JobMustFail, OSError):
    """A path that names a FIFO, a device, a socket, a directory or a symlink, not a file.

    A `JobMustFail` (a file a job was given cannot be used) that is also an `OSError` with its
    errno, for callers that read one. Where a caller knows better it says so: an audio file's
    becomes `AudioUnreadable` (that enrollment fails), a submitted file's `SubmitRefused`.
    """


_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words a person reads in a report."""
    for test, words in _KINDS:
        if test(mode):
            return words
    return "not a regular file"


def open_regular(path: Path) -> IO[bytes]:
    """Open `path` for reading only if it is a regular file, without ever blocking on it.

    `O_NOFOLLOW` refuses a symlink as the last component (one swapped in after a check cannot
    redirect the read), `O_NONBLOCK` keeps a FIFO from hanging the open, and `fstat` on the
    open descriptor (not the path) decides: what is read is what was checked. Raises
    `NotRegularFile` (an `OSError`) or the `OSError` of the open.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and os.path.islink(path):
            raise NotRegularFile(errno.ELOOP, "a symlink, not a regular file", str(path)) from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            code = errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL
            raise NotRegularFile(code, f"{file_kind(mode)}, not a regular file", str(path))
        os.set_blocking(fd, True)  # regular files never block; plain reads from here on
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def sha256_stream(fh: IO[bytes], chunk_bytes: int = HASH_CHUNK_BYTES) -> tuple[str, int]:
    """Hex sha256 and size of what is left to read in `fh`, read a chunk at a time."""
    digest = hashlib.sha256()
    size = 0
    while chunk := fh.read(chunk_bytes):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def sha256_file(path: Path) -> str:
    """Hex sha256 of the regular file `path` (`open_regular`: a FIFO, device or symlink raises
    instead of blocking or being followed), read a chunk at a time."""
    with open_regular(path) as fh:
        return sha256_stream(fh)[0]


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a created, renamed or removed file) durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name_for(path: Path) -> Path:
    """A fresh temporary name beside `path` that no queue scan or reader ever takes for real."""
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")


@contextlib.contextmanager
def atomic_writer(path: Path, mode: int = 0o644) -> Iterator[IO[bytes]]:
    """Yield a binary file whose content replaces `path` atomically when the block ends.

    On an exception the temporary file is removed and `path` is left untouched, so a failed
    write never leaves half a report behind.
    """
    tmp = temp_name_for(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data`: readers see the old content or the new, never a mix."""
    with atomic_writer(path, mode) as fh:
        fh.write(data)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    model_dump = getattr(value, "model_dump", None)  # pydantic models, without importing it
    if callable(model_dump):
        return model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps_json(document: Any, indent: int | None = 2) -> bytes:
    """The worker's JSON file encoding: UTF-8, datetimes as ISO 8601, paths as strings.

    Total over any text: a lone surrogate (from a `\\ud800` escape in a manifest, or a file
    name that is not UTF-8) cannot be UTF-8, so it is written as the JSON escape `\\ud800`,
    which reads back as the same string.
    """
    text = json.dumps(document, indent=indent, ensure_ascii=False, default=_json_default)
    return encode_text(text + "\n")


def atomic_write_json(path: Path, document: Any, indent: int | None = 2) -> None:
    """Write `document` as JSON to `path` atomically (see `atomic_writer`)."""
    atomic_write_bytes(path, dumps_json(document, indent))


def remove_leftovers(directory: Path, prefix: str, suffix: str) -> int:
    """Remove the files of `directory` named `<prefix>…<suffix>`: what a process killed while it
    wrote them left behind. Returns how many (blocking); a missing directory has none."""
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.name.startswith(prefix) and entry.name.endswith(suffix):
            Path(entry.path).unlink(missing_ok=True)
            removed += 1
    return removed
