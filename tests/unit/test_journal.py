"""The journal: durable appends, group commit, crash-tolerant reading."""

from __future__ import annotations

import errno
from pathlib import Path

import anyio
import anyio.from_thread
import pytest
from structlog.testing import capture_logs

from worker.journal.index import JournalIndex
from worker.journal.records import (
    AudioCreated,
    AudioIntent,
    AudioUploaded,
    Computed,
    EnrollmentOutcome,
    JobStarted,
    JournalCorrupt,
    JournalRecord,
    JournalState,
    parse_record,
    read_lines,
)
from worker.journal.writer import Journal, JournalWriteFailed, heal_torn_tail, write_and_fsync


def read_records(path: Path) -> list[JournalRecord]:
    """Every record, read as the index reads them (`read_lines`, then `parse_record`)."""
    return [parse_record(line, path, number) for _, line, number in read_lines(path)]


def load_state(path: Path) -> JournalState:
    """The journal replayed as a resumed job replays it (`JournalIndex.load` with a state)."""
    state = JournalState()
    with JournalIndex(path, path.parent / "index") as index:
        index.load(state)
    return state


def outcomes(path: Path) -> list[EnrollmentOutcome]:
    return [r for r in read_records(path) if isinstance(r, EnrollmentOutcome)]


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
    assert "b" not in state.memory  # finished: only unfinished enrollments are remembered
    mem = state.of("a")
    assert mem.audios == {"s1": "h1"}
    assert mem.uploaded == {"s1"}
    assert mem.intents == {"s2"}  # created-or-not is unknown: must be looked up
    assert mem.computed


async def test_concurrent_appends_all_land_in_fewer_fsyncs(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.jsonl"
    writes = 0

    def counting_write(fd: int, data: bytes) -> None:
        nonlocal writes
        writes += 1
        write_and_fsync(fd, data)

    async with Journal(path, write=counting_write) as journal, anyio.create_task_group() as tg:
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


def test_missing_journal_is_empty(tmp_path: Path) -> None:
    state = load_state(tmp_path / "absent.jsonl")
    assert state.started is None and not state.memory


async def test_torn_tail_then_two_restarts_stays_readable(tmp_path: Path) -> None:
    """The bug the old torn-line test hid: a fragment glued to the next run's first record."""
    path = tmp_path / "journal.jsonl"
    good = outcome("a").model_dump_json()
    path.write_text(good + "\n" + good[: len(good) // 2])
    for key in ("b", "c"):  # two restarts, each appending after opening
        async with Journal(path) as journal:
            await journal.append(outcome(key))
    assert [o.key for o in outcomes(path)] == ["a", "b", "c"]
    assert path.read_bytes().endswith(b"\n")


async def test_opening_truncates_the_torn_tail_and_logs_its_size(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    good = outcome("a").model_dump_json() + "\n"
    fragment = '{"kind": "outcome", "key": "b'
    path.write_text(good + fragment)
    with capture_logs() as logs:
        async with Journal(path):
            pass
    assert path.read_text() == good
    healed = [e for e in logs if e["event"] == "journal_torn_tail_truncated"]
    assert [e["bytes"] for e in healed] == [len(fragment)]


async def test_a_journal_that_is_only_a_fragment_is_emptied(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'{"kind": "job_st')
    assert heal_torn_tail(path) == 16
    assert path.read_bytes() == b""
    assert heal_torn_tail(path) == 0


async def test_a_failed_write_raises_for_every_record_it_lost_and_refuses_later_ones(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.jsonl"
    results: dict[str, str] = {}
    release = anyio.Event()
    disk_full = False

    def write(fd: int, data: bytes) -> None:
        if not disk_full:
            return write_and_fsync(fd, data)
        anyio.from_thread.run(release.wait)  # let the other appends queue behind us
        raise OSError(errno.ENOSPC, "No space left on device")

    async with Journal(path, write=write) as journal:
        await journal.append(outcome("before"))
        disk_full = True

        async def append(key: str) -> None:
            try:
                await journal.append(outcome(key))
            except JournalWriteFailed as exc:
                results[key] = str(exc)
            else:
                results[key] = "flushed"

        async with anyio.create_task_group() as tg:
            for i in range(5):
                tg.start_soon(append, f"k{i}")
            await anyio.wait_all_tasks_blocked()
            release.set()
        disk_full = False  # the disk has room again: the journal still refuses
        with pytest.raises(JournalWriteFailed, match="No space left on device"):
            await journal.append(outcome("after"))
    assert set(results) == {f"k{i}" for i in range(5)}
    assert all("No space left on device" in why for why in results.values()), results
    assert [o.key for o in outcomes(path)] == ["before"]  # nothing claimed durable was lost


def test_a_journal_write_failure_is_not_an_os_error() -> None:
    """The driver maps file problems to a failed enrollment; a lost record must not look so."""
    assert not issubclass(JournalWriteFailed, OSError)
