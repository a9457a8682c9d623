"""Report building: counts, exit code, streamed JSON, failures CSV in the input's columns."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

from worker.job.report import (
    FailuresCsv,
    ReportSummary,
    exit_code_for,
    write_report_json,
)
from worker.journal.records import EnrollmentOutcome, ErrorInfo

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def row(
    identity: str, outcome: str = "enrolled", error: ErrorInfo | None = None
) -> EnrollmentOutcome:
    return EnrollmentOutcome(
        key=f"demo/main/{identity}/main",
        identity=identity,
        voiceprint="main",
        owner="demo",
        space="main",
        source="line 2",
        outcome=outcome,
        model="phone/v1",
        audios=["a1"],
        error=error,
    )


ROWS = [
    row("ok-1"),
    row("same-2", "unchanged"),
    row("bad-3", "failed", ErrorInfo(step="add_audio", status=422, reason="voice 1.0 s < 4.5 s")),
]


def summary(**kw: object) -> ReportSummary:
    base = dict(
        job_id="j-abc",
        manifest="m.csv",
        manifest_sha256="ff",
        started_at=NOW,
        finished_at=NOW,
        total=3,
        counts={"enrolled": 1, "unchanged": 1, "failed": 1, "conflict": 0, "skipped": 0},
    )
    base.update(kw)
    return ReportSummary(**base)  # type: ignore[arg-type]


def failures_csv(
    failed: list[tuple[EnrollmentOutcome, list[dict[str, str]]]], columns: list[str] | None
) -> bytes:
    """The failures CSV as the job writes it (`JobInput.write_outputs`): add each, flush."""
    out = io.BytesIO()
    csv_out = FailuresCsv(out, columns)
    for outcome, originals in failed:
        csv_out.add(outcome, originals)
    csv_out.flush()
    return out.getvalue()


def test_exit_code() -> None:
    assert exit_code_for({"enrolled": 3, "unchanged": 1}) == 0
    assert exit_code_for({"enrolled": 3, "failed": 1}) == 1
    assert exit_code_for({"enrolled": 3, "conflict": 1}) == 1
    assert exit_code_for({"enrolled": 3, "skipped": 1}) == 1


def test_report_json_is_valid_with_rows(tmp_path: Path) -> None:
    path = tmp_path / "j.report.json"
    write_report_json(path, summary(), iter(ROWS))
    doc = json.loads(path.read_text())
    assert doc["job_id"] == "j-abc" and doc["counts"]["failed"] == 1
    assert [r["identity"] for r in doc["enrollments"]] == ["ok-1", "same-2", "bad-3"]
    assert doc["enrollments"][2]["error"] == {
        "step": "add_audio",
        "status": 422,
        "reason": "voice 1.0 s < 4.5 s",
    }
    assert "key" not in doc["enrollments"][0]
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file is gone


def test_report_json_without_rows_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "j.report.json"
    write_report_json(path, summary(total=0, counts={}), iter(()))
    assert json.loads(path.read_text())["enrollments"] == []


def test_failures_csv_keeps_the_input_columns() -> None:
    originals = {"bad-3": [{"identity": "bad-3", "audio": "x.wav", "extra": "keep me"}]}
    failed = [(r, originals.get(r.identity, [])) for r in ROWS]
    data = failures_csv(failed, ["identity", "audio", "extra"])
    got = list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))
    assert got == [
        {
            "identity": "bad-3",
            "audio": "x.wav",
            "extra": "keep me",
            "error_step": "add_audio",
            "error": "voice 1.0 s < 4.5 s",
        }
    ]


def test_failures_csv_for_json_input_uses_enrollment_fields() -> None:
    data = failures_csv([(r, []) for r in ROWS], None)
    header, *body = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert header[-2:] == ["error_step", "error"]
    assert len(body) == 1 and body[0][0] == "bad-3"


def test_failures_csv_is_a_header_only_when_nothing_failed() -> None:
    data = failures_csv([(r, []) for r in ROWS[:2]], ["identity", "audio"])
    assert data == b"identity,audio,error_step,error\r\n"
