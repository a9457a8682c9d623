"""A Voice ID input's output, beside our reports: `<job>.voiceid.json` in Voice ID's own shape.

    {"Version": "1.0",
     "Errors": [{"RequestId", "ErrorCode", "ErrorMessage"}],
     "SuccessfulEnrollments": [{"RequestId", "GeneratedSpeakerId", "CustomerSpeakerId",
                                "EnrollmentStatus"}]}

Owns: how our outcomes read in Voice ID's vocabulary (`ENROLLMENT_STATUS`, `error_code`, the
job's `voiceid_status`) and writing the file, so that tooling written for Voice ID's output
keeps working. `enrolled` is NEW_ENROLLMENT; `unchanged` and `kept` (nothing was changed) are
DUPLICATE_SKIPPED; `replaced` is ENROLLMENT_OVERWRITE; GeneratedSpeakerId is the voiceprint's
id. A failure's ErrorCode is status-like: 400 for bad input (the manifest, a recording, too
little speech), 402 for credits, 409 for a conflict, 500 for the rest; ErrorMessage is our
reason. The rows are read back from the journal twice, once per list, one at a time: a million
requests are never held at once. Written atomically, as every report.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from worker.base.fsutil import atomic_writer
from worker.base.streamout import EncodedText, StreamedObject
from worker.job.report import ReportWriter, needs_action
from worker.journal.records import EnrollmentOutcome, Outcome, Step

VERSION = "1.0"
ENROLLMENT_STATUS = {
    Outcome.ENROLLED.value: "NEW_ENROLLMENT",
    Outcome.UNCHANGED.value: "DUPLICATE_SKIPPED",
    Outcome.KEPT.value: "DUPLICATE_SKIPPED",
    Outcome.REPLACED.value: "ENROLLMENT_OVERWRITE",
}
# API answers that say the input was bad: 422 is a recording the model refuses (too little
# speech among them), 413/415 a file too large or of a format it does not take.
_BAD_INPUT = frozenset({400, 413, 415, 422})


def voiceid_path(report: Path) -> Path:
    """`<job>.voiceid.json` beside `<job>.report.json` (the same run's suffix, if any)."""
    return report.with_name(report.name.removesuffix(".report.json") + ".voiceid.json")


def voiceid_status(counts: Mapping[str, int]) -> str:
    """The job's status as Voice ID says it: COMPLETED (no errors), FAILED (no request
    succeeded), COMPLETED_WITH_ERRORS (some did)."""
    errors = sum(n for o, n in counts.items() if needs_action(o))
    if not errors:
        return "COMPLETED"
    succeeded = sum(counts.get(o, 0) for o in ENROLLMENT_STATUS)
    return "COMPLETED_WITH_ERRORS" if succeeded else "FAILED"


def error_code(row: EnrollmentOutcome) -> int:
    """A failed request's status-like code (module docstring)."""
    if row.outcome == Outcome.SKIPPED.value:
        return 402  # computes paused: the owner's credits ran out
    if row.outcome == Outcome.CONFLICT.value:
        return 409
    error = row.error
    if error is None:
        return 500
    if error.step == Step.PREFLIGHT.value or error.status in _BAD_INPUT:
        return 400
    if error.status in (402, 409):
        return error.status
    return 500


def _request_id(row: EnrollmentOutcome) -> str:
    """The RequestId; a request without a usable one is named by its place in the file."""
    return row.request_id if row.request_id is not None else row.source


def error_entry(row: EnrollmentOutcome) -> dict[str, Any]:
    reason = row.error.reason if row.error is not None else row.outcome
    return {"RequestId": _request_id(row), "ErrorCode": error_code(row), "ErrorMessage": reason}


def success_entry(row: EnrollmentOutcome) -> dict[str, Any]:
    return {
        "RequestId": _request_id(row),
        "GeneratedSpeakerId": row.voiceprint_id,
        "CustomerSpeakerId": row.speaker_id if row.speaker_id is not None else row.identity,
        "EnrollmentStatus": ENROLLMENT_STATUS[row.outcome],
    }


def write_voiceid_output(
    path: Path,
    rows: Callable[[], Iterable[EnrollmentOutcome]],
    writer: ReportWriter = atomic_writer,
) -> None:
    """Write `path` from `rows()` (each call a fresh walk of the job's outcome rows)."""
    with writer(path) as fh:
        doc = StreamedObject(EncodedText(fh), indented=True)
        doc.value("Version", VERSION)
        doc.array("Errors")
        for row in rows():
            if needs_action(row.outcome):
                doc.add_json(json.dumps(error_entry(row), ensure_ascii=False))
        doc.array("SuccessfulEnrollments")
        for row in rows():
            if row.outcome in ENROLLMENT_STATUS:
                doc.add_json(json.dumps(success_entry(row), ensure_ascii=False))
        doc.close()
        fh.write(b"\n")
