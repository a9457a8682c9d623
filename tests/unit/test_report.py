"""Report building: counts, exit code, streamed JSON, failures CSV in the input's columns."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

from worker.job.report import (
    ReportSummary,
    count_outcomes,
    exit_code_for,
    failure_csv_rows,
    write_failures_csv,
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
        counts=dict(count_outcomes(ROWS)),
    )
    base.update(kw)
    return ReportSummary(**base)  # type: ignore[arg-type]


def test_counts_include_every_outcome() -> None:
    counts = count_outcomes(ROWS)
    assert counts == {"enrolled": 1, "unchanged": 1, "failed": 1, "conflict": 0, "skipped": 0}


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


def test_failures_csv_keeps_the_input_columns(tmp_path: Path) -> None:
    originals = {"bad-3": [{"identity": "bad-3", "audio": "x.wav", "extra": "keep me"}]}
    failed = [(r, originals.get(r.identity, [])) for r in ROWS]
    rows = failure_csv_rows(failed, ["identity", "audio", "extra"])
    path = tmp_path / "f.csv"
    write_failures_csv(path, rows)
    with path.open() as fh:
        got = list(csv.DictReader(fh))
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
    header, *body = list(failure_csv_rows([(r, ()) for r in ROWS], None))
    assert header[-2:] == ["error_step", "error"]
    assert len(body) == 1 and body[0][0] == "bad-3"
