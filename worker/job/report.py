"""Job reports (design.md §6): what an operator reads, and what they drop back to retry.

Owns: the report's shape, which outcomes need the operator's action (`needs_action`) and the
exit code from the counts, the failures CSV (`FailuresCsv`: what a spreadsheet user reads and
acts on), and writing the report JSON atomically. The rows come from the journal's outcome records,
streamed: a 100 000-enrollment job's report is written without holding its rows in memory.
Secrets never reach this module: it sees handles, paths, counts and the server's error
messages only.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field

from worker.base.csvsafe import spreadsheet_safe_row
from worker.base.exitcodes import EXIT_FAILURES, EXIT_OK
from worker.base.fsutil import atomic_writer
from worker.base.streamout import EncodedText, StreamedObject
from worker.base.text import SafeStr, encode_text
from worker.journal.records import EnrollmentOutcome, Outcome
from worker.manifest.models import Enrollment, ManifestItem, RejectedEnrollment
from worker.manifest.retry import enrollment_json
from worker.manifest.values import show

# Outcomes that ask nothing of the operator: what the manifest and its `existing` policy asked
# for. Every other one (failed, conflict, skipped, and any outcome added later) needs action: it
# is in the failures CSV and the retry manifest and makes the exit code 1.
OK_OUTCOMES = frozenset(
    {o.value for o in (Outcome.ENROLLED, Outcome.UNCHANGED, Outcome.KEPT, Outcome.REPLACED)}
)

# The failures CSV's columns after the input's own, in this order (README, "Reports"): what
# happened, where the input says it, then the failed step and the reason.
CSV_TAIL_COLUMNS = ("outcome", "line", "error_step", "error")
JSON_TAIL_COLUMNS = ("outcome", "place", "error_step", "error")
# A JSON manifest's failures CSV: every field of the enrollment format (worker.manifest.retry).
JSON_INPUT_COLUMNS = (
    "identity",
    "voiceprint",
    "owner",
    "space",
    "model",
    "minAudios",
    "alias",
    "createIdentity",
    "existing",
    "retire",
    "audios",
)
UTF8_BOM = b"\xef\xbb\xbf"  # Excel reads a CSV without it as cp1252: "Î¼-law" for "μ-law"


def needs_action(outcome: str) -> bool:
    """Whether an enrollment that ended so goes to the failures CSV and the retry manifest."""
    return outcome not in OK_OUTCOMES


# A Voice ID manifest's: its own request and speaker ids first (worker.manifest.voiceid).
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
    manifest: SafeStr  # a file name need not be UTF-8 (os.listdir gives surrogate escapes)
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
    its `existing` policy asked for: `OK_OUTCOMES`), 1 otherwise (the CLI contract)."""
    return EXIT_FAILURES if any(n for o, n in counts.items() if needs_action(o)) else EXIT_OK


def cell(value: Any) -> str:
    """A JSON value as a spreadsheet cell: text as is, true/false, numbers, nothing for null."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("path"), str):
        return f"{value['path']}#{cell(value.get('channel'))}"  # one channel of a call
    if isinstance(value, list):
        return ";".join(cell(v) for v in value)
    return show(value)


class FailuresCsv:
    """The failures CSV written one enrollment at a time (push, for a single walk).

    Columns: a CSV manifest's own, as written, then `CSV_TAIL_COLUMNS`, one line per input row
    (an enrollment of three rows fails as three lines, each with its own line number); a JSON
    manifest's `JSON_INPUT_COLUMNS`, then `JSON_TAIL_COLUMNS`, one line per enrollment. Every
    value the operator gave is filled in, also on rows the parser rejected. The file starts with
    a UTF-8 BOM and uses the input's delimiter, so a spreadsheet opens it as it opened the input.
    """

    def __init__(
        self,
        fh: IO[bytes],
        input_columns: list[str] | None,
        *,
        delimiter: str = ",",
        audio_root: Path | None = None,
        voiceid: bool = False,
    ) -> None:
        self._csv_input = bool(input_columns)
        fixed = VOICEID_INPUT_COLUMNS if voiceid else JSON_INPUT_COLUMNS
        self._columns = list(input_columns) if input_columns else list(fixed)
        self._audio_root = audio_root
        fh.write(UTF8_BOM)
        self._out = _CsvOut(fh, delimiter)
        tail = CSV_TAIL_COLUMNS if self._csv_input else JSON_TAIL_COLUMNS
        self._out.write([*self._columns, *tail_names(tail, self._columns)])

    def add(self, row: EnrollmentOutcome, item: ManifestItem | None = None) -> None:
        """`row`'s lines when it needs action; `item` is its enrollment in the manifest."""
        if not needs_action(row.outcome):
            return
        tail = [row.outcome, "", row.error.step if row.error else "", _reason(row)]
        if self._csv_input:
            rows = item.rows if item is not None else ()
            lines = item.row_lines if item is not None else ()
            for i, original in enumerate(rows):
                tail[1] = str(lines[i]) if i < len(lines) else row.source
                self._out.write([original.get(c, "") for c in self._columns] + tail)
            return
        tail[1] = row.source
        values = {
            **self._values(row, item),
            "RequestId": row.request_id,
            "SpeakerId": row.speaker_id,
        }
        self._out.write([cell(values.get(c)) for c in self._columns] + tail)

    def _values(self, row: EnrollmentOutcome, item: ManifestItem | None) -> dict[str, Any]:
        if isinstance(item, RejectedEnrollment):
            return item.given
        if isinstance(item, Enrollment) and self._audio_root is not None:
            return enrollment_json(item, self._audio_root)
        return {
            "identity": row.identity,
            "voiceprint": row.voiceprint,
            "owner": row.owner,
            "space": row.space,
            "model": row.model,
            "audios": row.audios,
        }

    def flush(self) -> None:
        self._out.flush()


def tail_names(tail: Iterable[str], columns: Iterable[str]) -> list[str]:
    """The worker's columns after the input's, each prefixed `enroller_` where the input has a
    column of that name already (a phone `line`): a header never names two columns alike."""
    taken = {c.strip().lower() for c in columns}
    return [f"enroller_{name}" if name in taken else name for name in tail]


def _reason(row: EnrollmentOutcome) -> str:
    return row.error.reason if row.error else row.outcome


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

    def __init__(self, fh: IO[bytes], delimiter: str = ",") -> None:
        self._fh = fh
        self._text = io.StringIO()
        # RFC 4180 line ends (a CR inside a cell is quoted), in the input's delimiter.
        self._writer = csv.writer(self._text, delimiter=delimiter, lineterminator="\r\n")

    def write(self, row: list[str]) -> None:
        self._writer.writerow(spreadsheet_safe_row(row))
        if self._text.tell() > 1 << 16:
            self.flush()

    def flush(self) -> None:
        self._fh.write(encode_text(self._text.getvalue()))
        self._text.seek(0)
        self._text.truncate()
