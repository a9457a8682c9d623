"""The status page's failures table, a page at a time from the failures CSV
(`worker.commands.web_failures`): pages chain over every row once, a filter reads on by cursor
within its bound, and a cell with a newline or a quote stays one row."""

from __future__ import annotations

import csv
from pathlib import Path

from worker.commands.web_failures import failure_page, journal_failure_page
from worker.journal.records import EnrollmentOutcome, ErrorInfo, JobStarted


def _failures(path: Path, n: int, delimiter: str = ",") -> Path:
    """A failures CSV as the worker writes it for a CSV manifest: a BOM, the input's columns
    and delimiter, then outcome, line, error_step, error."""
    with path.open("w", newline="", encoding="utf-8-sig") as fh:
        out = csv.writer(fh, delimiter=delimiter)
        out.writerow(["identity", "audio", "outcome", "line", "error_step", "error"])
        for i in range(n):
            reason = "too short" if i % 10 == 3 else 'bad "audio"\nsecond line'
            row = [f"cust-{i:04d}", f"cust-{i:04d}.wav", "failed", str(i + 2), "preflight"]
            out.writerow([*row, reason])
    return path


def test_pages_chain_over_every_row_once(tmp_path: Path) -> None:
    path = _failures(tmp_path / "f.csv", 123)
    seen, at, row, pages = [], 0, 1, 0
    while True:
        page = failure_page(path, at, row, page_rows=50)
        seen += [r.identity for r in page.rows]
        pages += 1
        if page.next_at is None:
            break
        at, row = page.next_at, page.next_row
    assert seen == [f"cust-{i:04d}" for i in range(123)] and pages == 3
    first = failure_page(path, page_rows=2).rows
    assert first[0].reason == 'bad "audio"\nsecond line' and first[0].step == "preflight"
    assert first[1].place == "line 3"


def test_a_semicolon_export_reads_as_the_worker_wrote_it(tmp_path: Path) -> None:
    path = _failures(tmp_path / "f.csv", 3, delimiter=";")
    rows = failure_page(path).rows
    assert [(r.identity, r.place, r.step) for r in rows][:2] == [
        ("cust-0000", "line 2", "preflight"),
        ("cust-0001", "line 3", "preflight"),
    ]


def test_a_filter_reads_on_by_cursor_within_its_bound(tmp_path: Path) -> None:
    path = _failures(tmp_path / "f.csv", 100)
    page = failure_page(path, query="TOO SHORT", page_rows=50, scan_max=30)
    assert [r.identity for r in page.rows] == ["cust-0003", "cust-0013", "cust-0023"]
    assert page.exhausted_scan and page.scanned == 30 and page.next_at is not None
    more = failure_page(path, page.next_at, page.next_row, "too short", scan_max=1000)
    assert [r.identity for r in more.rows][:2] == ["cust-0033", "cust-0043"]
    assert len(more.rows) == 7 and more.next_at is None and not more.exhausted_scan


def test_a_missing_file_or_a_wild_cursor_is_an_empty_page(tmp_path: Path) -> None:
    assert failure_page(tmp_path / "none.csv").exists is False
    path = _failures(tmp_path / "f.csv", 3)
    beyond = failure_page(path, at=10**9)
    assert beyond.rows == [] and beyond.next_at is None


def _journal(path: Path) -> Path:
    """A journal as the worker writes it: records of every kind, failures among outcomes."""
    lines = [JobStarted(job_id="j-1", manifest="m.csv", manifest_sha256="0" * 64, enrollments=4)]
    for i, outcome in enumerate(["enrolled", "failed", "skipped", "failed"]):
        error = ErrorInfo(step="compute", reason=f"reason {i}") if outcome == "failed" else None
        lines.append(
            EnrollmentOutcome(key=f"k{i}", identity=f"id-{i}", voiceprint="main", owner="o",
                              space="s", source=f"line {i + 2}", outcome=outcome, error=error)
        )  # fmt: skip
    path.write_text("".join(r.model_dump_json() + "\n" for r in lines))
    return path


def test_a_running_job_s_failures_come_from_its_journal(tmp_path: Path) -> None:
    path = _journal(tmp_path / "journal.jsonl")
    page = journal_failure_page(path)
    assert [(r.identity, r.place, r.step, r.reason) for r in page.rows] == [
        ("id-1", "line 3", "compute", "reason 1"),
        ("id-2", "line 4", "", "skipped"),
        ("id-3", "line 5", "compute", "reason 3"),
    ]
    first = journal_failure_page(path, page_rows=1)
    rest = journal_failure_page(path, first.next_at or 0, page_rows=10)
    assert [r.identity for r in first.rows + rest.rows] == ["id-1", "id-2", "id-3"]
    assert [r.identity for r in journal_failure_page(path, query="REASON 3").rows] == ["id-3"]
    with path.open("ab") as fh:
        fh.write(b'{"kind": "outcome", "identity": "half-writ')  # a line being written
    assert len(journal_failure_page(path).rows) == 3
