"""`enroller demo`: one command, the whole product, a summary a newcomer can read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.cli import main


def test_demo_runs_examples_and_shows_the_deliberate_mistakes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "demo"
    assert main(["demo", "--dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "with-mistakes.csv" in out and 'identity "Cust 7"' in out
    reports = [
        json.loads(p.read_text()) for p in (root / "queue" / "reports").glob("*.report.json")
    ]
    counts = {doc["manifest"]: doc["counts"] for doc in reports}
    assert set(counts) == {"batch.csv", "nightly-job.json", "single.json", "with-mistakes.csv"}
    assert counts["nightly-job.json"]["enrolled"] == 3
    assert counts["with-mistakes.csv"] == {
        "enrolled": 1,
        "unchanged": 0,
        "failed": 3,
        "conflict": 0,
        "skipped": 0,
        "kept": 0,
        "replaced": 0,
    }
    # Every failed row is in the retry manifest, `Cust 7` too, as written (issue 30).
    [retry] = (root / "queue" / "reports").glob("with-mistakes-*.retry.json")
    retried = [e["identity"] for e in json.loads(retry.read_text())["enrollments"]]
    assert retried == ["Cust 7", "cust-0008", "cust-0009"]

    # A second run starts afresh in the same folder (it is the demo's own).
    assert main(["demo", "--dir", str(root)]) == 0


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "data.txt").write_text("keep")
    with pytest.raises(SystemExit, match="not a demo folder"):
        main(["demo", "--dir", str(tmp_path / "precious")])
    assert (tmp_path / "precious" / "data.txt").exists()
