"""Discovery on a real directory: start scan, file events, polling, in-place writers, bad files.

No stopwatch: producers act after a given scan (`Scans`), min_age runs on a `FakeClock`, and a
pickup "came from events" because no rescan can happen within the test (rescan_interval 1 h).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import anyio

from tests.fakeclock import FakeClock
from tests.scans import Scans
from tests.support import make_job_queue
from worker.queue.discover import Candidate, ScanHook
from worker.queue.jobqueue import JobQueue

NO_RESCAN = 3600.0  # far beyond any test's limit: a pickup must come from a scan or an event


def discovery_queue(
    root: Path,
    clock: Callable[[], float] | None = None,
    on_scan: ScanHook | None = None,
    **overrides: Any,
) -> JobQueue:
    """A queue that rescans only once an hour: within a test, a scan follows an event."""
    options: dict[str, Any] = {"lease_ttl": 5.0, "rescan_interval": NO_RESCAN, **overrides}
    return make_job_queue(root, clock, on_scan=on_scan, **options)


async def first_candidates(
    queue: JobQueue, want: int, limit: float = 30, during: Any = None
) -> list[Candidate]:
    """Run discovery until `want` distinct files were yielded (in order of first yield)."""
    found: dict[str, Candidate] = {}
    stop = anyio.Event()
    with anyio.fail_after(limit):
        async with anyio.create_task_group() as tg:
            if during is not None:
                tg.start_soon(during)
            async with aclosing(queue.discover(stop)) as candidates:
                async for candidate in candidates:
                    found.setdefault(candidate.name, candidate)
                    if len(found) >= want:
                        stop.set()
            tg.cancel_scope.cancel()
    return list(found.values())


async def test_full_scan_at_start_finds_waiting_files(tmp_path: Path) -> None:
    scans = Scans()
    queue = discovery_queue(tmp_path, on_scan=scans.saw)
    for name in ["a.json", "b.csv", ".c.json", "d.tmp"]:
        (queue.paths.inbox / name).write_text("x")
    found = await first_candidates(queue, 2)
    assert sorted(c.name for c in found) == ["a.json", "b.csv"]
    # The start scan and its second look (a file is ready once seen unchanged): no event.
    assert scans.first_ready("a.json") == scans.first_ready("b.csv") == 2


async def test_file_event_picks_up_a_new_file_without_a_rescan(tmp_path: Path) -> None:
    scans = Scans()
    queue = discovery_queue(tmp_path, on_scan=scans.saw)
    dropped_after: list[int] = []

    async def drop() -> None:
        await scans.reach(2)  # the start scan, then the one after the watch began
        dropped_after.append(scans.count)
        tmp = queue.paths.inbox / ".new.json.tmp"
        tmp.write_text('{"v": 1}')
        tmp.rename(queue.paths.inbox / "new.json")  # the Maildir way

    [candidate] = await first_candidates(queue, 1, during=drop)
    assert candidate.name == "new.json"
    # Found by a scan after the drop; with no pending file and no rescan due (1 h), only the
    # file event can have caused that scan.
    assert scans.first_ready("new.json") > dropped_after[0]


async def test_a_file_dropped_before_the_watch_begins_is_not_left_to_the_rescan(
    tmp_path: Path,
) -> None:
    """The watch starts only after the first scan: a drop in between raises no event."""
    scans = Scans()

    def drop_after_the_first_scan(names: frozenset[str], found: list[Candidate]) -> None:
        scans.saw(names, found)
        if scans.count == 1:  # only the first time
            (queue.paths.inbox / "early.json").write_text("{}")

    # rescan_interval 1 h: only a scan of its own can find it
    queue = discovery_queue(tmp_path, on_scan=drop_after_the_first_scan)
    [candidate] = await first_candidates(queue, 1)
    assert candidate.name == "early.json"


async def test_renamed_file_skips_min_age_and_in_place_file_waits(tmp_path: Path) -> None:
    # min_age 30 s on a clock that never moves: only a completed rename seen in the file events
    # can bring a fresh file out; the in-place file can never be ready.
    scans = Scans()
    queue = discovery_queue(tmp_path, FakeClock(), scans.saw, min_age=30.0)

    async def drop() -> None:
        await scans.reach(2)  # discovery is watching by now
        (queue.paths.inbox / "in-place.json").write_text('{"v": 1}')
        await scans.until_seen("in-place.json")  # its events came in a batch of their own
        tmp = queue.paths.inbox / ".renamed.json.tmp"
        tmp.write_text('{"v": 2}')
        tmp.rename(queue.paths.inbox / "renamed.json")  # the Maildir way

    [candidate] = await first_candidates(queue, 1, during=drop)
    assert candidate.name == "renamed.json"
    assert await queue.claim(candidate) is not None
    assert queue.scan() == []  # in-place.json: seen, fresh, not vouched for
    assert queue.pending_wait() == 30.0


async def test_polling_mode_picks_up_a_new_file(tmp_path: Path) -> None:
    scans = Scans()
    queue = discovery_queue(tmp_path, on_scan=scans.saw, queue_polling=True, poll_interval=0.1)
    dropped_after: list[int] = []

    async def drop() -> None:
        await scans.reach(1)
        dropped_after.append(scans.count)
        (queue.paths.inbox / "polled.csv").write_text("identity,audio\n")

    [candidate] = await first_candidates(queue, 1, during=drop)
    assert candidate.name == "polled.csv"
    assert scans.first_ready("polled.csv") > dropped_after[0]  # a later poll found it


async def test_half_written_file_is_not_claimed_until_stable(tmp_path: Path) -> None:
    # Far from the epoch: file mtimes look as if from the future, so only the time a file has
    # rested under the queue's own observation counts, on this clock the writer moves.
    clock = FakeClock(start=1_000_000.0)
    scans = Scans()
    queue = discovery_queue(
        tmp_path, clock, scans.saw, min_age=0.3, queue_polling=True, poll_interval=0.02
    )
    path = queue.paths.inbox / "growing.csv"
    finished = anyio.Event()
    resting: list[int] = []

    async def write_in_place() -> None:
        with path.open("w") as fh:
            fh.write("identity,audio\n")
            for i in range(12):
                fh.write(f"id{i},a{i}.wav\n")
                fh.flush()
                await scans.reach(scans.count + 2)  # seen, and seen unchanged once
                clock.advance(0.1)  # less than min_age between writes
        finished.set()
        await scans.reach(scans.count + 2)  # unchanged, but not min_age old yet
        resting.append(scans.count)
        clock.advance(0.35)  # past min_age, with room for float rounding

    [candidate] = await first_candidates(queue, 1, during=write_in_place)
    assert finished.is_set(), "yielded while the producer was still writing"
    assert scans.first_ready("growing.csv") > resting[0]  # only once it rested min_age
    job = await queue.claim(candidate)
    assert job is not None
    assert job.manifest_path.read_text().count("\n") == 13  # whole, not half


async def test_bad_entries_never_stop_discovery(tmp_path: Path) -> None:
    scans = Scans()
    queue = discovery_queue(tmp_path, on_scan=scans.saw)
    (queue.paths.inbox / "dir.json").mkdir()
    (queue.paths.inbox / "dangling.json").symlink_to(tmp_path / "nowhere")
    (queue.paths.inbox / "notes.txt").write_text("x")

    async def drop() -> None:
        await scans.reach(2)  # discovery went past the bad entries, twice
        (queue.paths.inbox / "good.json").write_text("{}")

    [candidate] = await first_candidates(queue, 1, during=drop)
    assert candidate.name == "good.json"


async def test_vanished_candidate_claims_nothing(tmp_path: Path) -> None:
    queue = discovery_queue(tmp_path)
    (queue.paths.inbox / "a.json").write_text("{}")
    [candidate] = await first_candidates(queue, 1)
    candidate.path.unlink()
    assert await queue.claim(candidate) is None


async def test_claimed_files_are_not_yielded_again(tmp_path: Path) -> None:
    scans = Scans()
    queue = discovery_queue(tmp_path, on_scan=scans.saw, queue_polling=True, poll_interval=0.02)
    for i in range(5):
        (queue.paths.inbox / f"m{i}.json").write_text(str(i))
    seen: list[str] = []
    stop = anyio.Event()

    async def three_more_polls() -> None:
        await scans.reach(scans.count + 3)
        stop.set()

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg, aclosing(queue.discover(stop)) as candidates:
            async for candidate in candidates:
                seen.append(candidate.name)
                assert await queue.claim(candidate) is not None
                if len(seen) == 5:
                    tg.start_soon(three_more_polls)  # they must bring nothing new
    assert sorted(seen) == [f"m{i}.json" for i in range(5)]
    assert scans.count >= 4
