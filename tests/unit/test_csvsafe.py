"""Spreadsheet-safe cells: a formula start gets a leading quote, nothing else changes."""

from __future__ import annotations

import csv
import io

import pytest

from worker.base.csvsafe import FORMULA_STARTS, spreadsheet_safe, spreadsheet_safe_row
from worker.job.report import FailuresCsv
from worker.journal.records import EnrollmentOutcome, ErrorInfo
from worker.manifest.models import RejectedEnrollment


@pytest.mark.parametrize("start", sorted(FORMULA_STARTS))
def test_a_formula_start_gets_a_leading_quote(start: str) -> None:
    assert spreadsheet_safe(f'{start}HYPERLINK("http://x")') == f'\'{start}HYPERLINK("http://x")'


def test_the_owasp_list_is_covered() -> None:
    assert {"=", "+", "-", "@", "\t", "\r"} <= FORMULA_STARTS


@pytest.mark.parametrize(
    "cell", ["", "cust-0001", "a=b", " =1+1", "'=already", "Ada Lovelace", "x\n=1", "ünïcode"]
)
def test_other_cells_are_kept_exactly(cell: str) -> None:
    assert spreadsheet_safe(cell) == cell


def test_a_row_is_escaped_cell_by_cell() -> None:
    assert spreadsheet_safe_row(["ok", "-1", "@SUM(A1)", ""]) == ["ok", "'-1", "'@SUM(A1)", ""]


def test_the_failures_csv_reads_back_as_written_plus_the_quote() -> None:
    """A CR or LF inside a cell stays inside it (quoted), so no row is split when read back."""
    failed = EnrollmentOutcome(
        key="demo/main/cust-1/main",
        identity="cust-1",
        voiceprint="main",
        owner="demo",
        space="main",
        source="line 2",
        outcome="failed",
        error=ErrorInfo(step="add_audio", reason="-1 s"),
    )
    out = io.BytesIO()
    csv_out = FailuresCsv(out, ["identity", "note"])
    rows = (
        {"identity": "cust-1", "note": "line one\r=2+2"},
        {"identity": "=cmd", "note": "\rnote\n"},
    )
    item = RejectedEnrollment(
        source="lines 2-3", position=2, problems=(), rows=rows, row_lines=(2, 3)
    )
    csv_out.add(failed, item)
    csv_out.flush()
    text = out.getvalue().decode("utf-8").removeprefix("\ufeff")
    got = list(csv.reader(io.StringIO(text, newline="")))
    assert got == [
        ["identity", "note", "outcome", "line", "error_step", "error"],
        ["cust-1", "line one\r=2+2", "failed", "2", "add_audio", "'-1 s"],
        ["'=cmd", "'\rnote\n", "failed", "3", "add_audio", "'-1 s"],
    ]
