"""The journal: durable appends, group commit, crash-tolerant reading."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from worker.journal import (
    AudioCreated,
    AudioIntent,
    AudioUploaded,
    Computed,
    EnrollmentOutcome,
    JobStarted,
    Journal,
    JournalCorrupt,
    load_state,
    outcomes,
    read_records,
)


def outcome(key: str, result: str = "enrolled") -> EnrollmentOutcome:
    return EnrollmentOutcome(
        key=key,
        identity=key,
        voiceprint="main",
        owner="demo",
        space="main",
        source="enrollments[0]",
        outcome=result,
    )


async def test_records_round_trip_and_state(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    async with Journal(path) as journal:
        await journal.append(
            JobStarted(job_id="j", manifest="m.json", manifest_sha256="x", enrollments=2)
        )
        await journal.append(AudioIntent(key="a", sha256="s1"))
        await journal.append(AudioCreated(key="a", sha256="s1", audio="h1"))
        await journal.append(AudioIntent(key="a", sha256="s2"))
        await journal.append(AudioUploaded(key="a", sha256="s1", audio="h1"))
        await journal.append(Computed(key="a"))
        await journal.append(outcome("b"))
    state = load_state(path)
    assert state.started is not None and state.started.job_id == "j"
    assert state.done_keys == {"b"}
    mem = state.of("a")
    assert mem.audios == {"s1": "h1"}
    assert mem.uploaded == {"s1"}
    assert mem.intents == {"s2"}  # created-or-not is unknown: must be looked up
    assert mem.computed


async def test_concurrent_appends_all_land_in_fewer_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "journal.jsonl"
    writes = 0
    async with Journal(path) as journal:
        original = journal._write

        def counting_write(data: bytes) -> None:
            nonlocal writes
            writes += 1
            original(data)

        monkeypatch.setattr(journal, "_write", counting_write)
        async with anyio.create_task_group() as tg:
            for i in range(200):
                tg.start_soon(journal.append, outcome(f"k{i}"))
    assert {o.key for o in outcomes(path)} == {f"k{i}" for i in range(200)}
    assert writes < 200  # group commit batched them


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    good = outcome("a").model_dump_json()
    path.write_text(good + "\n" + good[: len(good) // 2])
    assert [r.key for r in read_records(path)] == ["a"]  # type: ignore[union-attr]


def test_damage_before_the_last_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    good = outcome("a").model_dump_json()
    path.write_text("{not json\n" + good + "\n")
    with pytest.raises(JournalCorrupt, match="line 1"):
        list(read_records(path))


def test_first_outcome_per_key_wins(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text(
        outcome("a").model_dump_json() + "\n" + outcome("a", "failed").model_dump_json() + "\n"
    )
    assert [o.outcome for o in outcomes(path)] == ["enrolled"]


def test_missing_journal_is_empty(tmp_path: Path) -> None:
    state = load_state(tmp_path / "absent.jsonl")
    assert state.started is None and not state.done_keys
