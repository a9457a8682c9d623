"""Reading a CSV manifest from its bytes, record by record, with the byte offset of each.

Owns: the byte-exact walk over a CSV file: its lines split as universal newlines (`\\r\\n`,
`\\n`, a lone `\\r`: what `io.StringIO(text, newline="")` gives `csv.reader`) with the offset
where each starts, so a record can be read again later from its offset alone; the first pass
over the raw bytes (strict UTF-8, blank or not, how many lines at most); and `RowTable`, the
compact numpy arrays that remember per row only its offset, its line and the next row of its
enrollment (16 bytes a row, not a parsed row of ~1 kB). It knows nothing of columns or keys:
`worker.manifest` groups the rows.
"""

from __future__ import annotations

import codecs
import csv
import re
from dataclasses import dataclass
from typing import IO

import numpy as np

from worker.base.errors import JobMustFail

BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 20
_LONE_CR = re.compile(rb"\r(?!\n)")


class CsvChanged(JobMustFail):
    """A row read again is not where the first pass found it: the file changed meanwhile."""


@dataclass(frozen=True)
class ByteScan:
    """What the first look at the raw bytes found."""

    bad_utf8: tuple[int, int, int] | None  # (offset, byte, line) of the first invalid byte
    blank: bool  # nothing but whitespace (after a BOM)
    lines: int  # physical lines at most: a bound on the rows


def scan_bytes(fh: IO[bytes], start: int) -> ByteScan:
    """Check the bytes from `start` on as UTF-8 (chunked), leaving `fh` at `start`."""
    fh.seek(start)
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset, newlines, breaks, blank, prev_cr = start, 0, 0, True, False
    bad: tuple[int, int, int] | None = None
    while bad is None:
        chunk = fh.read(_CHUNK)
        pending = decoder.getstate()[0]
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            window = pending + chunk
            at = offset - len(pending) + exc.start
            bad = (at, window[exc.start], newlines + window[: exc.start].count(b"\n") + 1)
            break
        blank = blank and not text.strip()
        newlines += chunk.count(b"\n")
        breaks += chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")
        breaks -= prev_cr and chunk.startswith(b"\n")
        prev_cr = chunk.endswith(b"\r")
        offset += len(chunk)
        if not chunk:
            break
    fh.seek(start)
    return ByteScan(bad_utf8=bad, blank=blank, lines=breaks + 1)


class Lines:
    """The lines of a binary file from an offset on, as text; `pos` is where the next starts.

    Text is decoded with `surrogatepass`; every source has passed strict UTF-8 first
    (`scan_bytes`, or `read._decode` for a file read whole), so no lone surrogate reaches it.
    """

    def __init__(self, fh: IO[bytes], offset: int) -> None:
        self.fh = fh
        self.seek(offset)

    def seek(self, offset: int) -> None:
        self.fh.seek(offset)
        self.pos = offset
        self._pending: list[bytes] = []

    def __iter__(self) -> Lines:
        return self

    def __next__(self) -> str:
        if self._pending:
            raw = self._pending.pop()
        else:
            raw = self.fh.readline()
            if not raw:
                raise StopIteration
            if b"\r" in raw and _LONE_CR.search(raw):
                pieces = _LONE_CR.split(raw)
                # split() drops the separators: put each lone CR back on its line
                parts = [p + b"\r" for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
                raw, self._pending = parts[0], parts[:0:-1]
        self.pos += len(raw)
        return raw.decode("utf-8", "surrogatepass")


def first_line(fh: IO[bytes], start: int) -> str:
    """The first line from `start` on that is not blank (the header), leaving `fh` at `start`;
    "" when there is none."""
    found = next((line for line in Lines(fh, start) if line.strip()), "")
    fh.seek(start)
    return found


class Records:
    """csv records from an offset on; `start` is where the last one returned began."""

    def __init__(self, fh: IO[bytes], offset: int = 0, delimiter: str = ",") -> None:
        self.lines = Lines(fh, offset)
        self.reader = csv.reader(self.lines, delimiter=delimiter)
        self.start = offset

    @property
    def line_num(self) -> int:
        """Lines read since the start (or the last `at`), as `csv.reader` counts them."""
        return self.reader.line_num

    def __iter__(self) -> Records:
        return self

    def __next__(self) -> list[str]:
        self.start = self.lines.pos
        return next(self.reader)

    def at(self, offset: int) -> list[str]:
        """The record that starts at `offset` (read on from where the last one ended if it
        is the next one: a seek only where rows of one enrollment lie apart)."""
        if offset != self.lines.pos:
            self.lines.seek(offset)
        try:
            return next(self)
        except (StopIteration, csv.Error) as exc:
            raise CsvChanged(f"no row at byte {offset} any more: {exc}") from None


class RowTable:
    """Per row: byte offset, first line, next row of its group; per group: first/last row.

    Sized once from a bound on the rows (`ByteScan.lines`), so it never grows; every array
    starts as zeros, which the kernel maps lazily, so a bound far above the real rows (a file
    of blank lines) costs address space, not memory. Groups are numbered in the order of their
    first row, which is the order enrollments are reported.
    """

    def __init__(self, bound: int) -> None:
        self.offsets = np.zeros(bound, dtype=np.int64)
        self.lines = np.zeros(bound, dtype=np.int32)
        self.next = np.zeros(bound, dtype=np.int32)  # the next row + 1; 0: the group's last
        self.first = np.zeros(bound, dtype=np.int32)
        self.last: np.ndarray | None = np.zeros(bound, dtype=np.int32)
        self.ragged = np.zeros(bound, dtype=np.bool_)
        self.rows = 0
        self.groups = 0
        self._first_lines: np.ndarray | None = None

    def add_row(self, offset: int, line: int) -> int:
        row = self.rows
        self.offsets[row] = offset
        self.lines[row] = line
        self.rows += 1
        return row

    def new_group(self, row: int, *, ragged: bool = False) -> int:
        group = self.groups
        self.first[group] = row
        if self.last is not None:
            self.last[group] = row
        self.ragged[group] = ragged
        self.groups += 1
        return group

    def join(self, group: int, row: int) -> None:
        """Append `row` to `group` (only during the first pass)."""
        if self.last is None:
            raise RuntimeError("rows join groups only during the first pass")
        self.next[self.last[group]] = row + 1
        self.last[group] = row

    def done(self) -> None:
        """The first pass is over: drop what only it needed."""
        self.last = None

    def rows_of(self, group: int) -> list[int]:
        rows, row = [], int(self.first[group])
        while True:
            rows.append(row)
            row = int(self.next[row]) - 1
            if row < 0:
                return rows

    def group_at_line(self, line: int) -> int | None:
        """The group whose first row is on `line`, if any."""
        if self._first_lines is None:
            self._first_lines = self.lines[self.first[: self.groups]]
        i = int(np.searchsorted(self._first_lines, line))
        if i < self.groups and int(self._first_lines[i]) == line:
            return i
        return None
