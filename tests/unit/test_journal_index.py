"""The journal's SQLite index: exact answers over a prefix of the journal, rebuilt on mismatch."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

import worker.journal.index as journal_index
from worker.journal.index import JournalIndex
from worker.journal.records import (
    AudioDerived,
    AudioIntent,
    Computed,
    EnrollmentOutcome,
    JobStarted,
    JournalCorrupt,
    JournalState,
)


def outcome(key: str, result: str = "enrolled") -> EnrollmentOutcome:
    return EnrollmentOutcome(
        key=key,
        identity=key.rsplit("/", 2)[-2] if "/" in key else key,
        voiceprint="main",
        owner="demo",
        space="main",
        source="enrollments[0]",
        outcome=result,
    )


def started(job: str = "j") -> JobStarted:
    return JobStarted(job_id=job, manifest="m.json", manifest_sha256="x", enrollments=3)


def write(path: Path, *records: object, mode: str = "a") -> None:
    with path.open(mode) as fh:
        for r in records:
            fh.write(r.model_dump_json() + "\n")  # type: ignore[attr-defined]


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "job" / "journal.jsonl"
    path.parent.mkdir()
    write(
        path,
        started(),
        AudioIntent(key="demo/main/a/main", sha256="s1"),
        Computed(key="demo/main/a/main"),
        outcome("demo/main/a/main"),
        AudioDerived(key="demo/main/b/main", derivation="d1", sha256="s2", size=10),
        outcome("demo/main/b/main", "failed"),
        outcome("demo/main/a/main", "failed"),  # a second word on a key: the first stands
        outcome("invalid@enrollments[2]", "failed"),
    )
    return path


def index_of(journal: Path, tmp_path: Path) -> JournalIndex:
    return JournalIndex(journal, tmp_path / "index")


def test_answers_per_key_and_keeps_the_first_word(journal: Path, tmp_path: Path) -> None:
    with index_of(journal, tmp_path) as index:
        index.catch_up()
        assert "demo/main/a/main" in index and "demo/main/zzz/main" not in index
        assert index.status("demo/main/a/main") == "enrolled"
        record = index.outcome("demo/main/b/main")
        assert record is not None and record.outcome == "failed"
        assert index.counts()["enrolled"] == 1 and index.counts()["failed"] == 2
        assert index.counts()["conflict"] == 0  # every outcome is named
        assert index.counts() == {  # every outcome is named, with 0 when none
            "enrolled": 1,
            "unchanged": 0,
            "failed": 2,
            "conflict": 0,
            "skipped": 0,
            "kept": 0,
            "replaced": 0,
        }
        assert index.count(["failed", "skipped"], runnable=True) == 1  # not the invalid@ one
        assert [o.key for o in index.outcomes()] == [
            "demo/main/a/main",
            "demo/main/b/main",
            "invalid@enrollments[2]",
        ]
        assert index.get("d1") == ("s2", 10) and index.get("d2") is None
        assert index.computed_count() == 1 and index.computed_owners() == ["demo"]


def test_outcomes_are_walked_page_by_page_in_journal_order(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    write(path, started(), *(outcome(f"demo/main/k{i:02d}/main") for i in range(10)))
    with JournalIndex(path, tmp_path / "index", page=3) as index:
        index.catch_up()
        assert [o.key for o in index.outcomes()] == [f"demo/main/k{i:02d}/main" for i in range(10)]


def test_load_replays_the_state_and_indexes_in_one_read(journal: Path, tmp_path: Path) -> None:
    write(journal, AudioIntent(key="demo/main/c/main", sha256="s3"))
    state = JournalState()
    with index_of(journal, tmp_path) as index:
        index.load(state)
        assert state.started is not None and state.started.job_id == "j"
        assert set(state.memory) == {"demo/main/c/main"}  # only the unfinished enrollment
        assert index.upto == journal.stat().st_size


def test_a_reopened_index_reads_only_the_lines_after_its_prefix(
    journal: Path, tmp_path: Path
) -> None:
    with index_of(journal, tmp_path) as index:
        index.catch_up()
        first = index.upto
    write(journal, outcome("demo/main/c/main", "skipped"))
    with index_of(journal, tmp_path) as index:
        assert index.upto == first  # kept: it covers a prefix of this journal
        index.catch_up()
        assert index.status("demo/main/c/main") == "skipped"
        assert index.upto == journal.stat().st_size


def test_a_torn_tail_is_not_indexed_until_it_is_whole(journal: Path, tmp_path: Path) -> None:
    line = outcome("demo/main/c/main").model_dump_json()
    with journal.open("a") as fh:
        fh.write(line[:20])
    with index_of(journal, tmp_path) as index:
        index.catch_up()
        assert "demo/main/c/main" not in index
        assert index.upto == journal.stat().st_size - 20


def test_an_index_stopped_between_commits_resumes_exactly(journal: Path, tmp_path: Path) -> None:
    """A kill between two transactions leaves a prefix; the next open reads the rest."""
    write(journal, *(outcome(f"demo/main/x{i}/main") for i in range(7)))
    batches = 0

    def die_after_the_second() -> None:
        nonlocal batches
        batches += 1
        if batches == 2:
            raise KeyboardInterrupt  # as good as SIGKILL: nothing after this runs

    index = JournalIndex(
        journal, tmp_path / "index", commit_every=3, committed=die_after_the_second
    )
    with pytest.raises(KeyboardInterrupt):
        index.catch_up()
    index.close()
    with index_of(journal, tmp_path) as reopened:
        assert 0 < reopened.upto < journal.stat().st_size
        reopened.catch_up()
        assert reopened.count() == 10  # a, b, invalid@ and x0..x6, each once
        assert [o.key for o in reopened.outcomes()][-1] == "demo/main/x6/main"


@pytest.mark.parametrize("change", ["another journal", "shorter", "garbage index"])
def test_an_index_that_does_not_match_its_journal_is_rebuilt(
    journal: Path, tmp_path: Path, change: str
) -> None:
    with index_of(journal, tmp_path) as index:
        index.catch_up()
        db = index.path
    if change == "another journal":  # the same path, a new run of the job
        write(journal, started("j2"), outcome("demo/main/n/main"), mode="w")
    elif change == "shorter":
        write(journal, started(), outcome("demo/main/a/main"), mode="w")
    else:
        db.write_bytes(b"not a database, not at all" * 100)
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    with index_of(journal, tmp_path) as index:
        index.catch_up()
        keys = [o.key for o in index.outcomes()]
    expected = {
        "another journal": ["demo/main/n/main"],
        "shorter": ["demo/main/a/main"],
        "garbage index": ["demo/main/a/main", "demo/main/b/main", "invalid@enrollments[2]"],
    }
    assert keys == expected[change]


def test_damage_in_the_middle_of_the_journal_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text("{not json\n" + outcome("demo/main/a/main").model_dump_json() + "\n")
    with index_of(path, tmp_path) as index, pytest.raises(JournalCorrupt, match="line 1"):
        index.catch_up()


def test_usage_records_seen_count_per_computed_key(journal: Path, tmp_path: Path) -> None:
    write(journal, Computed(key="demo/main/b/main"), Computed(key="other/main/c/main"))
    with index_of(journal, tmp_path) as index:
        index.catch_up()
        assert index.computed_owners() == ["demo", "other"]
        assert index.computed_per_owner() == {"demo": 2, "other": 1}
        seen = [
            ("r1", "demo/main/a/main"),
            ("r2", "demo/main/a/main"),
            ("r3", "demo/main/zzz/main"),
        ]
        index.saw_usage("demo", seen)
        index.saw_usage("demo", seen[:1])  # the same record on two pages (the list moved)
        assert index.usage_listed("demo") == 3  # distinct records, foreign ones too
        assert index.usage_found() == 2  # the unknown key is not ours
        assert index.charged(times="> 1", limit=10) == (1, ["demo/main/a/main"])
        assert index.charged(times="= 0", limit=1) == (2, ["demo/main/b/main"])
        index.forget_usage("demo")
        assert index.charged(times="= 0", limit=10)[0] == 3


def test_a_usage_record_seen_before_its_compute_is_indexed_still_counts(
    journal: Path, tmp_path: Path
) -> None:
    """A page read while the job runs may list a compute whose journal line is not indexed."""
    with index_of(journal, tmp_path) as index:
        index.saw_usage("demo", [("r1", "demo/main/a/main")])
        write(journal, Computed(key="demo/main/a/main"))
        index.catch_up()
        assert index.usage_found() == 1
        assert index.charged(times="= 0", limit=10) == (0, [])


def test_remove_deletes_the_index_files(journal: Path, tmp_path: Path) -> None:
    index = index_of(journal, tmp_path)
    index.catch_up()
    index.remove()
    assert list((tmp_path / "index").iterdir()) == []


def test_without_a_writable_local_directory_it_lives_beside_the_journal(
    journal: Path, tmp_path: Path
) -> None:
    """A read-only root filesystem (no writable /tmp): the job still runs, with a warning."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the index directory should be")
    with capture_logs() as logs, JournalIndex(journal, blocker / "index") as index:
        index.catch_up()
        assert index.path.parent == journal.parent
        assert index.status("demo/main/a/main") == "enrolled"
    assert [e["event"] for e in logs].count("journal_index_beside_journal") == 1
    with JournalIndex(journal, blocker / "index") as again:
        assert again.upto == journal.stat().st_size  # found there again, not rebuilt
        again.remove()
    assert sorted(p.name for p in journal.parent.iterdir()) == ["journal.jsonl"]


def test_the_page_cache_is_capped_whatever_the_journal_size(journal: Path, tmp_path: Path) -> None:
    """SQLite's default cache (2 MB) fills as the index grows: a job's memory would grow with
    it. The cap holds on a fresh index and on a reopened one."""
    write(journal, started(), *(outcome(f"demo/main/id-{i}/main") for i in range(50)), mode="w")
    for _ in range(2):
        with JournalIndex(journal, tmp_path / "index") as index:
            index.catch_up()
            (cache,) = index._db.execute("PRAGMA cache_size").fetchone()
            assert cache == -journal_index.CACHE_KIB
            assert index.count() == 50


def test_a_line_being_appended_is_left_for_later_without_a_torn_tail_warning(
    journal: Path, tmp_path: Path
) -> None:
    """The usage follower indexes the journal while the job appends to it."""
    write(journal, Computed(key="demo/main/a/main"))
    line = Computed(key="demo/main/b/main").model_dump_json().encode() + b"\n"
    with journal.open("ab") as fh:
        fh.write(line[:10])  # half a line: its writer has not finished
    with capture_logs() as logs, index_of(journal, tmp_path) as index:
        index.catch_up(live=True)
        assert index.computed_count() == 1
        with journal.open("ab") as fh:
            fh.write(line[10:])
        index.catch_up(live=True)
        assert index.computed_count() == 2
    assert not [e for e in logs if e["event"] == "journal_torn_tail_skipped"]


def test_catch_up_tells_the_computes_it_added_per_owner(journal: Path, tmp_path: Path) -> None:
    """The usage follower counts the job's computes from these, not by a count each second."""
    write(journal, Computed(key="demo/main/a/main"), Computed(key="other/main/c/main"))
    with index_of(journal, tmp_path) as index:
        assert index.catch_up() == {"demo": 1, "other": 1}
        write(journal, Computed(key="demo/main/b/main"), Computed(key="demo/main/a/main"))
        assert +index.catch_up() == {"demo": 1}  # a compute journaled twice counts once
        assert index.catch_up() == {}
