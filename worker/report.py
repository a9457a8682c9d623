"""Job reports (design.md §6): what an operator reads, and what they drop back to retry.

Owns: the report's shape, the counts, the failures CSV rows, and writing all three files
atomically. The rows come from the journal's outcome records, streamed: a 100 000-enrollment
job's report is written without holding its rows in memory. Secrets never reach this module:
it sees handles, paths, counts and the server's error messages only.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO

from pydantic import BaseModel, ConfigDict, Field

from worker.csvsafe import spreadsheet_safe_row
from worker.enrollment_rules import Outcome
from worker.fsutil import atomic_writer
from worker.journal import EnrollmentOutcome
from worker.text import encode_text

RETRYABLE = frozenset({Outcome.FAILED.value, Outcome.SKIPPED.value})
NOT_OK = frozenset({Outcome.FAILED.value, Outcome.SKIPPED.value, Outcome.CONFLICT.value})
ERROR_COLUMNS = ("error_step", "error")
JSON_INPUT_COLUMNS = ("identity", "voiceprint", "owner", "space", "model", "audios", "source")


class UsageCheck(BaseModel):
    """Usage records against the voiceprints this job computed: one each, no more, no less."""

    model_config = ConfigDict(frozen=True)
    expected: int
    found: int
    missing: list[str] = Field(default_factory=list)  # keys computed here without a record
    double_charged: list[str] = Field(default_factory=list)  # keys with more than one record
    error: str | None = None  # the records could not be read; the reason


class ReportSummary(BaseModel):
    """The head of `<job>.report.json`, before its rows."""

    job_id: str
    manifest: str
    manifest_sha256: str
    started_at: datetime
    finished_at: datetime
    total: int
    counts: dict[str, int]
    requests: int | None = None
    credits_spent: int | None = None
    usage: UsageCheck | None = None
    interrupted: bool = False  # stopped by shutdown; the job resumes on the next start
    files: dict[str, str] = Field(default_factory=dict)


def count_outcomes(rows: Iterable[EnrollmentOutcome]) -> Counter[str]:
    counts: Counter[str] = Counter({o.value: 0 for o in Outcome})
    for row in rows:
        counts[row.outcome] += 1
    return counts


def exit_code_for(counts: Counter[str] | dict[str, int]) -> int:
    """0 when every enrollment is enrolled or unchanged, 1 otherwise (the CLI contract)."""
    return 1 if any(counts.get(o, 0) for o in NOT_OK) else 0


def report_json_chunks(summary: ReportSummary, rows: Iterable[EnrollmentOutcome]) -> Iterator[str]:
    """The report as JSON text, chunk by chunk: the summary's fields, then `enrollments`."""
    head = summary.model_dump_json(indent=2)
    assert head.endswith("\n}")
    yield head[:-2] + ',\n  "enrollments": ['
    first = True
    for row in rows:
        body = row.model_dump_json(exclude={"kind", "key"})
        yield ("\n    " if first else ",\n    ") + body
        first = False
    yield "\n  ]\n}\n" if not first else "]\n}\n"


def failure_csv_rows(
    rows: Iterable[EnrollmentOutcome],
    input_columns: list[str] | None,
    input_rows: Callable[[EnrollmentOutcome], list[dict[str, str]]] | None = None,
) -> Iterator[list[str]]:
    """Header, then one row per failed input line, in the input's own columns.

    `input_columns`/`input_rows` describe a CSV manifest (its header, and the original rows of
    one enrollment); for JSON manifests both are None and the enrollment's fields are used.
    """
    columns = list(input_columns) if input_columns else list(JSON_INPUT_COLUMNS)
    yield [*columns, *ERROR_COLUMNS]
    for row in rows:
        if row.outcome not in NOT_OK:
            continue
        step = row.error.step if row.error else ""
        reason = row.error.reason if row.error else row.outcome
        if input_columns and input_rows is not None:
            for original in input_rows(row):
                yield [original.get(c, "") for c in columns] + [step, reason]
        else:
            values = {
                "identity": row.identity,
                "voiceprint": row.voiceprint,
                "owner": row.owner,
                "space": row.space,
                "model": row.model or "",
                "audios": ";".join(row.audios),
                "source": row.source,
            }
            yield [values[c] for c in columns] + [step, reason]


def write_report_json(
    path: Path, summary: ReportSummary, rows: Iterable[EnrollmentOutcome]
) -> None:
    with atomic_writer(path) as fh:
        for chunk in report_json_chunks(summary, rows):
            fh.write(encode_text(chunk))


def write_failures_csv(path: Path, csv_rows: Iterable[list[str]]) -> None:
    with atomic_writer(path) as fh:
        _write_csv(fh, csv_rows)


def _write_csv(fh: IO[bytes], csv_rows: Iterable[list[str]]) -> None:
    """Every cell spreadsheet-safe (worker/csvsafe.py): this file is opened in spreadsheets."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")  # RFC 4180: a CR inside a cell is quoted
    for row in csv_rows:
        writer.writerow(spreadsheet_safe_row(row))
        if text.tell() > 1 << 16:
            fh.write(encode_text(text.getvalue()))
            text.seek(0)
            text.truncate()
    fh.write(encode_text(text.getvalue()))
