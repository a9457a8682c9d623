"""Job reports (design.md §6): what an operator reads, and what they drop back to retry.

Owns: the report's shape, the exit code from the counts, the failures CSV (`FailuresCsv`),
and writing the report JSON atomically. The rows come from the journal's outcome records,
streamed: a 100 000-enrollment job's report is written without holding its rows in memory.
Secrets never reach this module: it sees handles, paths, counts and the server's error
messages only.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import IO

from pydantic import BaseModel, ConfigDict, Field

from worker.base.csvsafe import spreadsheet_safe_row
from worker.base.exitcodes import EXIT_FAILURES, EXIT_OK
from worker.base.fsutil import atomic_writer
from worker.base.streamout import EncodedText, StreamedObject
from worker.base.text import encode_text
from worker.journal.records import EnrollmentOutcome, Outcome

RETRYABLE = frozenset({Outcome.FAILED.value, Outcome.SKIPPED.value})
NOT_OK = frozenset({Outcome.FAILED.value, Outcome.SKIPPED.value, Outcome.CONFLICT.value})
ERROR_COLUMNS = ("error_step", "error")
JSON_INPUT_COLUMNS = ("identity", "voiceprint", "owner", "space", "model", "audios", "source")
VOICEID_INPUT_COLUMNS = ("RequestId", "SpeakerId", *JSON_INPUT_COLUMNS)


class UsageCheck(BaseModel):
    """Usage records against the voiceprints this job computed: one each, no more, no less."""

    model_config = ConfigDict(frozen=True)
    expected: int
    found: int
    # Keys computed here without a record / with more than one: the first 100 in key order,
    # and how many there are (a million missing keys would not fit in a report).
    missing: list[str] = Field(default_factory=list)
    double_charged: list[str] = Field(default_factory=list)
    missing_count: int = 0
    double_charged_count: int = 0
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
    # An earlier start of this job was cut (a stop, a crash) and this run resumed it from its
    # journal: `requests` counts this run's only.
    interrupted: bool = False
    files: dict[str, str] = Field(default_factory=dict)
    # A Voice ID input's: the job's status in Voice ID's words (worker.job.voiceid_output).
    voiceid_status: str | None = None


def exit_code_for(counts: Counter[str] | dict[str, int]) -> int:
    """0 when every enrollment is enrolled, unchanged, kept or replaced (what the manifest and
    its `existing` policy asked for), 1 otherwise (the CLI contract)."""
    return EXIT_FAILURES if any(counts.get(o, 0) for o in NOT_OK) else EXIT_OK


def _failure_lines(
    row: EnrollmentOutcome,
    originals: Sequence[Mapping[str, str]],
    columns: list[str],
    *,
    csv_input: bool,
) -> Iterator[list[str]]:
    if row.outcome not in NOT_OK:
        return
    step = row.error.step if row.error else ""
    reason = row.error.reason if row.error else row.outcome
    if csv_input:
        for original in originals:
            yield [original.get(c, "") for c in columns] + [step, reason]
        return
    values = {
        "identity": row.identity,
        "voiceprint": row.voiceprint,
        "owner": row.owner,
        "space": row.space,
        "model": row.model or "",
        "audios": ";".join(row.audios),
        "source": row.source,
        "RequestId": row.request_id or "",
        "SpeakerId": row.speaker_id or "",
    }
    yield [values[c] for c in columns] + [step, reason]


class FailuresCsv:
    """The failures CSV written one failed enrollment at a time (push, for a single walk)."""

    def __init__(
        self, fh: IO[bytes], input_columns: list[str] | None, *, voiceid: bool = False
    ) -> None:
        self._csv_input = bool(input_columns)
        fixed = VOICEID_INPUT_COLUMNS if voiceid else JSON_INPUT_COLUMNS
        self._columns = list(input_columns) if input_columns else list(fixed)
        self._out = _CsvOut(fh)
        self._out.write([*self._columns, *ERROR_COLUMNS])

    def add(self, row: EnrollmentOutcome, originals: Sequence[Mapping[str, str]] = ()) -> None:
        for line in _failure_lines(row, originals, self._columns, csv_input=self._csv_input):
            self._out.write(line)

    def flush(self) -> None:
        self._out.flush()


# How a report file is written (`JobSeams.report_writer`): atomically, by `atomic_writer`.
ReportWriter = Callable[[Path], AbstractContextManager[IO[bytes]]]


def write_report_json(
    path: Path,
    summary: ReportSummary,
    rows: Iterable[EnrollmentOutcome],
    writer: ReportWriter = atomic_writer,
) -> None:
    """The summary's fields, then `enrollments` (each row but its kind and key), indented."""
    with writer(path) as fh:
        doc = StreamedObject(EncodedText(fh), indented=True)
        doc.fields(summary, exclude={"voiceid_status"} if summary.voiceid_status is None else None)
        doc.array("enrollments")
        for row in rows:
            doc.add_json(row.model_dump_json(exclude=_NOT_SHOWN | _unset_ids(row)))
        doc.close()
        fh.write(b"\n")


_NOT_SHOWN = frozenset({"kind", "key"})
_IDS = frozenset({"request_id", "speaker_id"})


def _unset_ids(row: EnrollmentOutcome) -> frozenset[str]:
    """A Voice ID request's ids where it has them; other manifests' rows stay as they were."""
    return _IDS if row.request_id is None and row.speaker_id is None else frozenset()


class _CsvOut:
    """Every cell spreadsheet-safe (worker/base/csvsafe.py): this file is opened in spreadsheets.

    Rows are encoded 64 KiB at a time, so a million of them never sit in memory at once.
    """

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self._text = io.StringIO()
        self._writer = csv.writer(self._text, lineterminator="\r\n")  # RFC 4180: CR is quoted

    def write(self, row: list[str]) -> None:
        self._writer.writerow(spreadsheet_safe_row(row))
        if self._text.tell() > 1 << 16:
            self.flush()

    def flush(self) -> None:
        self._fh.write(encode_text(self._text.getvalue()))
        self._text.seek(0)
        self._text.truncate()
