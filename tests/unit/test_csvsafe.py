"""Spreadsheet-safe cells: a formula start gets a leading quote, nothing else changes."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from worker.base.csvsafe import FORMULA_STARTS, spreadsheet_safe, spreadsheet_safe_row
from worker.job.report import write_failures_csv


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


def test_the_failures_csv_reads_back_as_written_plus_the_quote(tmp_path: Path) -> None:
    """A CR or LF inside a cell stays inside it (quoted), so no row is split when read back."""
    rows = [["identity", "note"], ["cust-1", "line one\r=2+2"], ["=cmd", "\rnote\n"]]
    path = tmp_path / "f.csv"
    write_failures_csv(path, rows)
    with path.open(encoding="utf-8", newline="") as fh:
        got = list(csv.reader(fh))
    assert got == [["identity", "note"], ["cust-1", "line one\r=2+2"], ["'=cmd", "'\rnote\n"]]
