"""The journal index's files: where they live, the journal's head and line ends they are
checked against, and when an index nobody uses any more is swept.

The index is a cache of what the journal proves (`worker.journal.index`): losing one costs a
re-read of the journal, never a fact, so these files live in the host's temp folder and an old
one is simply removed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

STALE_AFTER_S = 7 * 24 * 3600  # an index left by a job that ended elsewhere is swept after this
_HEAD_MAX = 1 << 16  # the journal's first line identifies it; longer is not a journal


def default_directory() -> Path:
    return Path(tempfile.gettempdir()) / f"voiceprint-enroller-index-{os.getuid()}"


def first_line(journal: Path) -> bytes:
    """The journal's first whole line, which identifies it, or b"" when there is none."""
    try:
        with journal.open("rb") as fh:
            line = fh.readline(_HEAD_MAX)
    except FileNotFoundError:
        return b""
    return line if line.endswith(b"\n") else b""


def line_end(journal: Path, offset: int) -> bool:
    """Whether `offset` is the end of a whole line of `journal` (a prefix the index may cover)."""
    try:
        with journal.open("rb") as fh:
            fh.seek(offset - 1)
            return fh.read(1) == b"\n"
    except (FileNotFoundError, OSError):
        return False


def sweep_stale(directory: Path) -> None:
    """Remove indexes untouched for a week: their jobs ended on another host, or long ago."""
    cutoff = time.time() - STALE_AFTER_S
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
