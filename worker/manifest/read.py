"""Reading a manifest: from a path or from bytes, to the format it is in.

Owns: the file-level checks that come before any format (a regular file, readable, within
`ENROLLER_MAX_MANIFEST_BYTES`, UTF-8, not blank), which format a file is (CSV when named
`.csv`, JSON when named `.json` or starting with `{`/`[`, else CSV), and when a file is read
as a stream from disk instead of whole (`STREAM_JSON_MIN_BYTES`, `STREAM_CSV_MIN_BYTES`). The
size limit is checked before reading, so a huge file is never loaded. Nothing here raises for
bad input: every failure is a file problem.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

from worker.base.fsutil import NotRegularFile, open_regular
from worker.manifest.csv import stream_csv_bytes, stream_csv_source
from worker.manifest.json import stream_json, stream_json_file
from worker.manifest.models import ManifestDefaults, Problem
from worker.manifest.stream import ManifestStream, broken

# From these sizes on, a manifest is read as a stream from disk (worker.manifest.jsonscan,
# worker.manifest.csvscan), never whole. Smaller JSON is parsed whole, for exact error positions
# (line and column) and tolerance of NaN, which the streaming parser does not give; smaller CSV is
# read into memory once, so both passes see the same bytes.
STREAM_JSON_MIN_BYTES = 4 * 1024 * 1024
STREAM_CSV_MIN_BYTES = 4 * 1024 * 1024
_BOM = b"\xef\xbb\xbf"


def _too_large(size: int, max_bytes: int) -> str:
    return (
        f"{size / 2**20:.1f} MiB is over the {max_bytes / 2**20:g} MiB manifest limit "
        "(ENROLLER_MAX_MANIFEST_BYTES)"
    )


def _decode(data: bytes, file: str, max_bytes: int) -> str | Problem:
    """The manifest's text, or the problem that spoils the whole file."""
    if len(data) > max_bytes:
        return Problem(file=file, reason=_too_large(len(data), max_bytes))
    bom = len(_BOM) if data.startswith(_BOM) else 0  # tolerate the BOM that exports add
    try:
        text = data[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = bom + exc.start
        line = data.count(b"\n", 0, at) + 1
        return Problem(
            file=file,
            place=f"line {line}",
            reason=f"not UTF-8 text (byte 0x{data[at]:02x} at offset {at}); save the file as UTF-8",
        )
    if not text.strip():
        return Problem(file=file, reason="is empty")
    return text


def stream_manifest(data: bytes, file: str, defaults: ManifestDefaults) -> ManifestStream:
    """A manifest of either format held whole, its enrollments built only as they are iterated;
    CSV when the name ends in `.csv`, else by content."""
    text = _decode(data, file, defaults.max_bytes)
    if isinstance(text, Problem):
        return broken(file, defaults, [text])
    if file.lower().endswith(".csv"):
        return stream_csv_bytes(data, file, defaults)
    if file.lower().endswith(".json") or text.lstrip().startswith(("{", "[")):
        return stream_json(text, file, defaults)
    return stream_csv_bytes(data, file, defaults)


def open_manifest(
    path: Path,
    defaults: ManifestDefaults,
    name: str | None = None,
    *,
    stream_json_from: int = STREAM_JSON_MIN_BYTES,
    stream_csv_from: int = STREAM_CSV_MIN_BYTES,
) -> ManifestStream:
    """A manifest file (blocking I/O), its enrollments built only as they are iterated.

    `name` is how messages call the file. A file of `stream_json_from` / `stream_csv_from`
    bytes or more is read as a stream from disk (0: every file, as the stream tests do), a
    smaller one whole.
    """
    shown = name if name is not None else str(path)

    def refused(reason: str) -> ManifestStream:
        return broken(shown, defaults, [Problem(file=shown, reason=reason)])

    try:
        with open_regular(path) as fh:  # a FIFO or device swapped in never blocks the read
            size = os.fstat(fh.fileno()).st_size
            if size > defaults.max_bytes:
                return refused(_too_large(size, defaults.max_bytes))
            json_like = _looks_like_json(fh, shown)
            if json_like and size >= stream_json_from:
                return stream_json_file(path, fh, shown, defaults, _whole(fh, shown, defaults))
            if not json_like and size >= stream_csv_from:
                start = len(_BOM) if fh.read(3) == _BOM else 0
                return stream_csv_source(
                    lambda: open_regular(path), shown, defaults, start=start, check_bytes=True
                )
            data = fh.read(defaults.max_bytes + 1)
    except IsADirectoryError:
        return refused("is a directory")
    except NotRegularFile as exc:
        return refused(f"is {exc.strerror}")
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            return refused("does not exist")
        return refused(f"cannot be read ({exc.strerror or exc})")
    return stream_manifest(data, shown, defaults)


def _whole(fh: IO[bytes], file: str, defaults: ManifestDefaults) -> Callable[[], ManifestStream]:
    """Read the open file again from its start, the ordinary way."""

    def again() -> ManifestStream:
        fh.seek(0)
        return stream_manifest(fh.read(defaults.max_bytes + 1), file, defaults)

    return again


def _looks_like_json(fh: IO[bytes], file: str) -> bool:
    """JSON by name, or (not named .csv) by its first non-blank byte; leaves `fh` at 0."""
    if file.lower().endswith(".csv"):
        return False
    if file.lower().endswith(".json"):
        return True
    head = fh.read(64).removeprefix(_BOM).lstrip()
    fh.seek(0)
    return head[:1] in (b"{", b"[")
