"""One page of a job's failures, read from its failures CSV without reading the rest.

Owns: `failure_page`, which seeks to a byte offset of `<job>.failures.csv` and reads rows until
the page is full, the filter has looked at `SCAN_MAX_ROWS` rows, or the file ends. The next page
is the byte offset where this one stopped (a cursor), so page 20 000 of a job of 1 000 000 rows
costs what page 1 costs: the web page never holds the report, and no index has to be built or
kept beside a queue that the page only reads.

A job still running has no failures CSV yet: its failures come the same way from its journal
(`journal_failure_page`), whose outcome records also say where the manifest names each one.

Why the failures CSV and not the journal index: the index lives on the worker's local disk and
is gone once the job ends (`worker.journal.index`); the CSV is in `reports/`, shared by the
whole fleet, and holds exactly the rows the table shows (those that need action) in the input's
own columns and delimiter, then `outcome`, the place (`line` or `place`), `error_step`, `error`.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from pydantic import BaseModel

from worker.job.report import needs_action

PAGE_ROWS = 50
SCAN_MAX_ROWS = 100_000  # rows a filter reads per request before it hands back a cursor
RECORD_MAX_BYTES = 64 * 1024  # one CSV record (a quoted cell may hold newlines)
HEADER_MAX_BYTES = 64 * 1024


class FailureRow(BaseModel):
    """One row of the failures table: who, where, which step, why."""

    identity: str
    place: str
    step: str
    reason: str


class FailurePage(BaseModel):
    """A page of failures and where the next one starts (None: the file ends here)."""

    rows: list[FailureRow]
    next_at: int | None
    next_row: int
    scanned: int  # rows read for this page (a filter may read many to fill it)
    exhausted_scan: bool  # the filter stopped at SCAN_MAX_ROWS before the page was full
    exists: bool


def _record(fh: io.BufferedReader) -> bytes:
    """One CSV record (lines joined while a quote is open), at most RECORD_MAX_BYTES."""
    data = fh.readline(RECORD_MAX_BYTES)
    while data and data.count(b'"') % 2 == 1 and len(data) < RECORD_MAX_BYTES:
        more = fh.readline(RECORD_MAX_BYTES - len(data))
        if not more:
            break
        data += more
    return data


def _cells(record: bytes, delimiter: str = ",") -> list[str]:
    text = record.decode("utf-8", errors="replace").removeprefix("\ufeff")  # the file's BOM
    return next(csv.reader([text], delimiter=delimiter), [])


def _header(record: bytes) -> tuple[list[str], str]:
    """The header's cells and the file's delimiter: the input's own (`,`, `;` or a tab), told by
    the worker's four last columns (`outcome`, `line` or `place`, `error_step`, `error`)."""
    for delimiter in (",", ";", "\t"):
        cells = _cells(record, delimiter)
        if len(cells) >= 4 and cells[-1].removeprefix("enroller_") == "error":
            return cells, delimiter
    return _cells(record), ","


def _row(header: list[str], cells: list[str], number: int) -> FailureRow:
    """The row's identity from its `identity` column (a Voice ID input's `SpeakerId`), and the
    place, step and reason from the worker's four last columns (`enroller_`-prefixed where the
    input had columns of those names)."""
    values = dict(zip(header, cells, strict=False))
    identity = values.get("identity") or values.get("SpeakerId") or (cells[0] if cells else "")
    tail = cells[len(header) - 4 : len(header)] if len(header) >= 4 else []
    _, where, step, reason = tail if len(tail) == 4 else ("", "", "", "")
    kind = header[-3].removeprefix("enroller_") if len(header) >= 4 else ""
    place = f"line {where}" if kind == "line" and where.isdigit() else where
    return FailureRow(
        identity=identity,
        place=place or f"failures.csv row {number}",
        step=step,
        reason=reason,
    )


def failure_page(
    path: Path,
    at: int = 0,
    row: int = 1,
    query: str = "",
    page_rows: int = PAGE_ROWS,
    scan_max: int = SCAN_MAX_ROWS,
) -> FailurePage:
    """The failures from byte `at` on (`row`: the number of its first row, for the place
    column), keeping those whose identity, step or reason contains `query` (any case)."""
    wanted = query.casefold()
    rows: list[FailureRow] = []
    scanned = 0
    try:
        fh = path.open("rb")
    except OSError:
        return FailurePage(rows=[], next_at=None, next_row=row, scanned=0, exhausted_scan=False,
                           exists=False)  # fmt: skip
    with fh:
        header, delimiter = _header(fh.readline(HEADER_MAX_BYTES))
        start = fh.tell()
        fh.seek(max(at, start))
        while len(rows) < page_rows and scanned < scan_max:
            record = _record(fh)  # type: ignore[arg-type]
            if not record:
                return FailurePage(rows=rows, next_at=None, next_row=row, scanned=scanned,
                                   exhausted_scan=False, exists=True)  # fmt: skip
            scanned += 1
            row += 1
            if wanted and wanted not in record.decode("utf-8", errors="replace").casefold():
                continue  # the whole record lacks it: no need to parse its cells
            found = _row(header, _cells(record, delimiter), row - 1)
            text = f"{found.identity}\n{found.step}\n{found.reason}".casefold()
            if not wanted or wanted in text:
                rows.append(found)
        next_at = fh.tell()
        ended = not fh.peek(1)
    return FailurePage(
        rows=rows,
        next_at=None if ended else next_at,
        next_row=row,
        scanned=scanned,
        exhausted_scan=len(rows) < page_rows and not ended,
        exists=True,
    )


def _journal_row(line: bytes) -> FailureRow | None:
    """The failure an outcome record of the journal tells, or None (any other record)."""
    if b'"outcome"' not in line:
        return None  # most records: no JSON parse
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("kind") != "outcome":
        return None
    outcome = record.get("outcome")
    if not isinstance(outcome, str) or not needs_action(outcome):
        return None
    error = record.get("error") if isinstance(record.get("error"), dict) else {}
    return FailureRow(
        identity=str(record.get("identity", "")),
        place=str(record.get("source", "")),
        step=str(error.get("step", "")),
        reason=str(error.get("reason", outcome)),
    )


def journal_failure_page(
    path: Path,
    at: int = 0,
    query: str = "",
    page_rows: int = PAGE_ROWS,
    scan_max: int = SCAN_MAX_ROWS,
) -> FailurePage:
    """A running job's failures so far, from byte `at` of its journal, as `failure_page` gives
    a finished job's. A line still being written (no newline yet) ends the page."""
    wanted = query.casefold()
    rows: list[FailureRow] = []
    scanned = 0
    try:
        fh = path.open("rb")
    except OSError:
        return FailurePage(rows=[], next_at=None, next_row=1, scanned=0, exhausted_scan=False,
                           exists=False)  # fmt: skip
    with fh:
        fh.seek(at)
        ended = False
        while len(rows) < page_rows and scanned < scan_max:
            line = fh.readline(RECORD_MAX_BYTES)
            if not line.endswith(b"\n"):
                ended = True
                break
            scanned += 1
            found = _journal_row(line)
            text = f"{found.identity}\n{found.step}\n{found.reason}" if found else ""
            if found is not None and (not wanted or wanted in text.casefold()):
                rows.append(found)
        next_at = fh.tell()
    return FailurePage(
        rows=rows,
        next_at=None if ended else next_at,
        next_row=1,
        scanned=scanned,
        exhausted_scan=len(rows) < page_rows and not ended,
        exists=True,
    )
