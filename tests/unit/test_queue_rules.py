"""Pure queue rules: names, job ids, stability of in-place writes, renames seen in file events,
lease staleness."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from worker.queue.rules import (
    EntryChange,
    FileStat,
    Lease,
    NameKind,
    StabilityTracker,
    arrived_by_rename,
    classify_name,
    job_id_for,
    lease_age,
    lease_is_stale,
    safe_stem,
)

SHA = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("batch.json", NameKind.CANDIDATE),
        ("batch.csv", NameKind.CANDIDATE),
        ("BATCH.JSON", NameKind.CANDIDATE),
        ("with space.csv", NameKind.CANDIDATE),
        (".batch.json", NameKind.IN_PROGRESS),
        (".hidden", NameKind.IN_PROGRESS),
        ("batch.json.tmp", NameKind.IN_PROGRESS),
        ("batch.tmp", NameKind.IN_PROGRESS),
        ("batch.csv.part", NameKind.IN_PROGRESS),
        ("batch.PART", NameKind.IN_PROGRESS),
        ("batch.xlsx", NameKind.OTHER),
        ("README", NameKind.OTHER),
        ("batch.json.bak", NameKind.OTHER),
    ],
)
def test_classify_name(name: str, kind: NameKind) -> None:
    assert classify_name(name) is kind


@pytest.mark.parametrize(
    ("name", "job_id"),
    [
        ("batch.json", "batch-0123456789"),
        ("Nightly Export 2024.csv", "Nightly_Export_2024-0123456789"),
        ("..weird..json", "weird-0123456789"),
        ("ü.json", "manifest-0123456789"),
        ("a/b.json", "b-0123456789"),
    ],
)
def test_job_id_is_safe_stem_plus_short_hash(name: str, job_id: str) -> None:
    assert job_id_for(name, SHA) == job_id


def test_job_id_changes_with_content_not_only_name() -> None:
    assert job_id_for("x.json", "a" * 64) != job_id_for("x.json", "b" * 64)
    assert job_id_for("x.json", "a" * 64) == job_id_for("x.json", "a" * 64)


def test_safe_stem_is_bounded() -> None:
    assert len(safe_stem("x" * 500 + ".json")) == 64


# --- stability tracker, with a fake clock --------------------------------------------------


def test_file_needs_two_equal_scans_and_min_age() -> None:
    tracker = StabilityTracker(min_age=2.0)
    st = FileStat(size=10, mtime=100.0, ino=1)
    assert tracker.observe({"a.json": st}, now=100.5) == []  # first sighting
    assert tracker.next_wait(100.5) == pytest.approx(1.5)
    assert tracker.observe({"a.json": st}, now=101.0) == []  # stable but only 1 s old
    assert tracker.observe({"a.json": st}, now=102.1) == ["a.json"]
    assert tracker.next_wait(102.1) == 0.0


def test_growing_file_is_not_ready() -> None:
    tracker = StabilityTracker(min_age=1.0)
    now = 100.0
    for size in range(1, 6):
        now += 5.0  # even long gaps: it changed since the last scan
        assert tracker.observe({"a.csv": FileStat(size, now - 0.1, 1)}, now) == []
    final = FileStat(5, now - 0.1, 1)
    assert tracker.observe({"a.csv": final}, now + 2) == ["a.csv"]


def test_old_file_dropped_by_rename_is_ready_at_second_scan() -> None:
    tracker = StabilityTracker(min_age=2.0)
    st = FileStat(10, mtime=10.0, ino=7)
    assert tracker.observe({"a.json": st}, now=1000.0) == []
    assert tracker.observe({"a.json": st}, now=1000.01) == ["a.json"]


def test_future_mtime_becomes_ready_after_min_age_of_observation() -> None:
    tracker = StabilityTracker(min_age=2.0)
    st = FileStat(10, mtime=5000.0, ino=1)  # clock skew: mtime an hour ahead
    assert tracker.observe({"a.json": st}, now=1000.0) == []
    assert tracker.observe({"a.json": st}, now=1001.0) == []
    assert tracker.observe({"a.json": st}, now=1002.5) == ["a.json"]


def test_replaced_file_starts_over_and_vanished_file_is_forgotten() -> None:
    tracker = StabilityTracker(min_age=0.0)
    assert tracker.observe({"a.json": FileStat(1, 1.0, 1)}, now=10.0) == []
    assert tracker.observe({"a.json": FileStat(1, 1.0, 2)}, now=11.0) == []  # new inode
    assert tracker.observe({"a.json": FileStat(1, 1.0, 2)}, now=12.0) == ["a.json"]
    assert tracker.observe({}, now=13.0) == []
    assert tracker.next_wait(13.0) is None
    assert tracker.observe({"a.json": FileStat(1, 1.0, 2)}, now=14.0) == []


def test_forget_requires_fresh_observation() -> None:
    tracker = StabilityTracker(min_age=0.0)
    st = FileStat(1, 1.0, 1)
    tracker.observe({"a.json": st}, now=10.0)
    tracker.forget("a.json")
    assert tracker.observe({"a.json": st}, now=11.0) == []


# --- completed renames, from one file-event batch --------------------------------------------

ADD, MOD, DEL = EntryChange.ADDED, EntryChange.MODIFIED, EntryChange.DELETED
PROBE = ".probe-0123456789ab.tmp"


@pytest.mark.parametrize(
    ("batch", "vouched"),
    [
        pytest.param(
            [(ADD, "a.json.tmp"), (MOD, "a.json.tmp"), (DEL, "a.json.tmp"), (ADD, "a.json")],
            {"a.json"},
            id="tmp-renamed-in-one-batch",
        ),
        pytest.param([(DEL, ".c"), (ADD, "c.json")], {"c.json"}, id="dot-name-renamed"),
        pytest.param([(DEL, "d.csv.part"), (ADD, "d.csv")], {"d.csv"}, id="part-renamed"),
        pytest.param(
            [(DEL, ".a.tmp"), (ADD, "a.json"), (DEL, ".b.tmp"), (ADD, "b.csv")],
            {"a.json", "b.csv"},
            id="two-renames",
        ),
        pytest.param(
            [(DEL, ".a.tmp"), (DEL, ".x.tmp"), (ADD, "a.json")],
            {"a.json"},
            id="more-in-progress-deleted-than-added",
        ),
        pytest.param([(ADD, "b.json")], set(), id="in-place-write"),
        pytest.param([(ADD, "b.json"), (MOD, "b.json")], set(), id="in-place-write-modified"),
        pytest.param(
            [(DEL, ".a.tmp"), (ADD, "a.json"), (ADD, "b.json")],
            set(),
            id="ambiguous-more-added-than-renamed",
        ),
        pytest.param(
            [(ADD, PROBE), (DEL, PROBE), (ADD, "b.json")], set(), id="setup-probe-is-no-evidence"
        ),
        pytest.param(
            [(DEL, PROBE), (DEL, ".a.tmp"), (ADD, "a.json"), (ADD, "b.json")],
            set(),
            id="setup-probe-does-not-settle-ambiguity",
        ),
        pytest.param(
            [(DEL, ".a.tmp"), (ADD, "a.json"), (MOD, "a.json")],
            set(),
            id="written-after-rename",
        ),
        pytest.param(
            [(DEL, ".a.tmp"), (ADD, "a.json"), (DEL, "a.json")],
            set(),
            id="deleted-in-same-batch",
        ),
        pytest.param([(DEL, ".a.tmp"), (ADD, "a.txt")], set(), id="not-a-candidate"),
        pytest.param([(DEL, "a.json.tmp"), (MOD, "b.json")], set(), id="only-modified"),
        pytest.param([], set(), id="empty"),
    ],
)
def test_arrived_by_rename(batch: list[tuple[EntryChange, str]], vouched: set[str]) -> None:
    assert arrived_by_rename(batch) == vouched


def test_vouched_name_is_ready_at_first_look() -> None:
    tracker = StabilityTracker(min_age=2.0)
    tracker.vouch({"a.json"})
    assert tracker.next_wait(100.0) == 0.0  # pending vouch: scan now
    fresh = FileStat(10, mtime=100.0, ino=1)
    assert tracker.observe({"a.json": fresh}, now=100.01) == ["a.json"]


def test_vouch_is_for_the_next_scan_only() -> None:
    tracker = StabilityTracker(min_age=2.0)
    tracker.vouch({"a.json"})
    assert tracker.observe({}, now=100.0) == []  # not there (claimed elsewhere meanwhile)
    assert tracker.next_wait(100.0) is None
    st = FileStat(10, mtime=100.1, ino=1)
    assert tracker.observe({"a.json": st}, now=100.2) == []  # written in place later
    assert tracker.observe({"a.json": st}, now=100.3) == []  # and still needs min_age
    assert tracker.observe({"a.json": st}, now=102.2) == ["a.json"]


def test_vouch_does_not_cover_a_later_rewrite() -> None:
    tracker = StabilityTracker(min_age=2.0)
    tracker.vouch({"a.json"})
    st = FileStat(10, mtime=100.0, ino=1)
    assert tracker.observe({"a.json": st}, now=100.01) == ["a.json"]
    assert tracker.observe({"a.json": st}, now=100.1) == ["a.json"]  # unchanged: still ready
    rewritten = FileStat(4, mtime=100.2, ino=1)  # truncated and being rewritten in place
    assert tracker.observe({"a.json": rewritten}, now=100.25) == []
    assert tracker.observe({"a.json": rewritten}, now=100.3) == []
    assert tracker.next_wait(100.3) == pytest.approx(1.9)
    assert tracker.observe({"a.json": rewritten}, now=102.3) == ["a.json"]


def test_vouch_covers_only_the_names_vouched_for() -> None:
    tracker = StabilityTracker(min_age=2.0)
    tracker.vouch({"a.json"})
    renamed, in_place = FileStat(10, 100.0, 1), FileStat(10, 100.0, 2)
    assert tracker.observe({"a.json": renamed, "b.json": in_place}, now=100.01) == ["a.json"]
    assert tracker.observe({"a.json": renamed, "b.json": in_place}, now=100.1) == ["a.json"]
    assert tracker.next_wait(100.1) == 0.0  # a.json, ready but not claimed yet


def test_forget_drops_a_vouch() -> None:
    tracker = StabilityTracker(min_age=2.0)
    tracker.vouch({"a.json"})
    tracker.forget("a.json")
    assert tracker.next_wait(100.0) is None
    assert tracker.observe({"a.json": FileStat(10, 100.0, 1)}, now=100.01) == []


# --- lease staleness -----------------------------------------------------------------------


def _lease(heartbeat: float, released: bool = False) -> Lease:
    at = datetime.fromtimestamp(heartbeat, UTC)
    return Lease(
        holder="w1",
        host="h",
        pid=1,
        token="t",
        generation=0,
        job="j",
        acquired_at=at,
        heartbeat=at,
        released=released,
    )


@pytest.mark.parametrize(
    ("age", "stale"), [(0.0, False), (59.9, False), (60.0, False), (60.1, True), (-5, False)]
)
def test_lease_is_stale_after_ttl(age: float, stale: bool) -> None:
    lease = _lease(1_000_000.0)
    assert lease_age(lease, 1_000_000.0 + age) == pytest.approx(age)
    assert lease_is_stale(lease, 1_000_000.0 + age, ttl=60.0) is stale


def test_released_lease_is_stale_at_once() -> None:
    assert lease_is_stale(_lease(1_000_000.0, released=True), 1_000_000.0, ttl=60.0)


def test_lease_round_trips_through_json() -> None:
    lease = _lease(1_000_000.0)
    assert Lease.model_validate_json(lease.model_dump_json()) == lease
