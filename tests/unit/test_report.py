"""Report building: counts, exit code, streamed JSON, failures CSV in the input's columns."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

from worker.job.report import (
    JSON_INPUT_COLUMNS,
    UTF8_BOM,
    FailuresCsv,
    ReportSummary,
    exit_code_for,
    needs_action,
    write_report_json,
)
from worker.journal.records import EnrollmentOutcome, ErrorInfo
from worker.manifest.models import ManifestItem, RejectedEnrollment

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
    failed: list[tuple[EnrollmentOutcome, ManifestItem | None]],
    columns: list[str] | None,
    delimiter: str = ",",
) -> bytes:
    """The failures CSV as the job writes it (`JobInput.write_outputs`): add each, flush."""
    out = io.BytesIO()
    csv_out = FailuresCsv(out, columns, delimiter=delimiter, audio_root=Path("/audio"))
    for outcome, item in failed:
        csv_out.add(outcome, item)
    csv_out.flush()
    return out.getvalue()


def csv_item(rows: list[dict[str, str]], lines: list[int]) -> RejectedEnrollment:
    """An enrollment of a CSV manifest, by its rows as written (the CSV only reads those)."""
    return RejectedEnrollment(
        source="lines", position=lines[0], problems=(), rows=tuple(rows), row_lines=tuple(lines)
    )


def parsed(data: bytes, delimiter: str = ",") -> list[list[str]]:
    """The CSV as a spreadsheet reads it, after the BOM every failures CSV starts with."""
    assert data.startswith(UTF8_BOM)
    text = data[len(UTF8_BOM) :].decode("utf-8")
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


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


def test_failures_csv_keeps_the_input_columns_with_outcome_and_line_on_each_row() -> None:
    rows = [
        {"identity": "bad-3", "audio": "x.wav", "extra": "keep me"},
        {"identity": "bad-3", "audio": "y.wav", "extra": "μ-law"},
    ]
    items = {"bad-3": csv_item(rows, [7, 9])}
    data = failures_csv([(r, items.get(r.identity)) for r in ROWS], ["identity", "audio", "extra"])
    assert data.startswith(b"\xef\xbb\xbfidentity,audio,extra,outcome,line,error_step,error\r\n")
    assert parsed(data)[1:] == [
        ["bad-3", "x.wav", "keep me", "failed", "7", "add_audio", "voice 1.0 s < 4.5 s"],
        ["bad-3", "y.wav", "μ-law", "failed", "9", "add_audio", "voice 1.0 s < 4.5 s"],
    ]


def test_the_workers_columns_never_take_an_input_columns_name() -> None:
    item = csv_item([{"identity": "bad-3", "line": "+44 20 7946 0000", "Outcome": "vip"}], [2])
    data = failures_csv([(ROWS[2], item)], ["identity", "line", "Outcome"])
    assert parsed(data) == [
        ["identity", "line", "Outcome", "enroller_outcome", "enroller_line", "error_step", "error"],
        ["bad-3", "'+44 20 7946 0000", "vip", "failed", "2", "add_audio", "voice 1.0 s < 4.5 s"],
    ]


def test_failures_csv_keeps_the_input_delimiter() -> None:
    item = csv_item([{"identity": "bad-3", "audio": "x;1.wav"}], [2])
    data = failures_csv([(ROWS[2], item)], ["identity", "audio"], delimiter=";")
    header, line = data[len(UTF8_BOM) :].decode("utf-8").splitlines()
    assert header == "identity;audio;outcome;line;error_step;error"
    assert line == 'bad-3;"x;1.wav";failed;2;add_audio;voice 1.0 s < 4.5 s'


def test_every_outcome_but_the_ok_ones_needs_action() -> None:
    """Outcomes are not listed here: one added later (issue 28's) needs action unless OK."""
    assert {o for o in ("enrolled", "unchanged", "kept", "replaced") if needs_action(o)} == set()
    assert all(needs_action(o) for o in ("failed", "conflict", "skipped", "some-new-outcome"))
    assert exit_code_for({"enrolled": 1, "kept": 2, "replaced": 3}) == 0
    assert exit_code_for({"enrolled": 1, "some-new-outcome": 1}) == 1


def test_failures_csv_for_json_input_fills_every_value_of_a_rejected_enrollment() -> None:
    """A row the parser rejected shows what was written: model, audios and all."""
    given = {
        "owner": "demo",
        "space": "main",
        "identity": "Cust 7",
        "voiceprint": "main",
        "model": "phone/v9",
        "minAudios": 2,
        "createIdentity": True,
        "existing": "overwrite",
        "retire": "delete",
        "audios": ["a.wav", {"path": "call.wav", "channel": 1}],
    }
    item = RejectedEnrollment(source="enrollments[4]", position=4, problems=(), given=given)
    failed = row("", "failed", ErrorInfo(step="preflight", reason="model: unknown"))
    failed = failed.model_copy(update={"source": "enrollments[4]"})
    data = failures_csv([(failed, item)], None)
    header, body = parsed(data)
    assert header == [*JSON_INPUT_COLUMNS, "outcome", "place", "error_step", "error"]
    assert dict(zip(header, body, strict=True)) == {
        "identity": "Cust 7",
        "voiceprint": "main",
        "owner": "demo",
        "space": "main",
        "model": "phone/v9",
        "minAudios": "2",
        "alias": "",
        "createIdentity": "true",
        "existing": "overwrite",
        "retire": "delete",
        "audios": "a.wav;call.wav#1",
        "outcome": "failed",
        "place": "enrollments[4]",
        "error_step": "preflight",
        "error": "model: unknown",
    }


def test_failures_csv_is_a_header_only_when_nothing_failed() -> None:
    data = failures_csv([(r, None) for r in ROWS[:2]], ["identity", "audio"])
    assert data == UTF8_BOM + b"identity,audio,outcome,line,error_step,error\r\n"
