"""Atomic writes: the target is replaced whole or not at all, and no temporary file lingers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from worker.base.fsutil import atomic_write_bytes, atomic_write_json, atomic_writer, temp_name_for


def test_write_bytes_creates_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    atomic_write_bytes(target, b"one")
    assert target.read_bytes() == b"one"
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_failed_write_leaves_old_content_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match=r"^boom$"), atomic_writer(target) as fh:
        fh.write(b"half")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_write_json_encodes_datetimes_and_paths(tmp_path: Path) -> None:
    target = tmp_path / "e.json"
    at = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    atomic_write_json(target, {"at": at, "file": Path("x/y.csv"), "name": "Zoë"})
    assert json.loads(target.read_text("utf-8")) == {
        "at": "2024-05-01T12:00:00+00:00",
        "file": "x/y.csv",
        "name": "Zoë",
    }


def test_temp_names_are_ignored_by_the_dropper_contract(tmp_path: Path) -> None:
    tmp = temp_name_for(tmp_path / "batch.csv")
    assert tmp.parent == tmp_path
    assert tmp.name.startswith(".") and tmp.name.endswith(".tmp")
