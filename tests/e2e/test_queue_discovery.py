"""Discovery on a real directory: start scan, file events, polling, in-place writers, bad files."""

from __future__ import annotations

import time
from contextlib import aclosing
from pathlib import Path
from typing import Any

import anyio

from worker.queue import Candidate, JobQueue
from worker.settings import Settings


def make_queue(root: Path, **overrides: Any) -> JobQueue:
    values: dict[str, Any] = {
        "queue_dir": root,
        "min_age": 0.0,
        "lease_ttl": 5.0,
        "rescan_interval": 30.0,  # long: a prompt pickup must come from events, not rescans
    }
    values.update(overrides)
    queue = JobQueue(Settings(**values))
    queue.setup()
    return queue


async def first_candidates(
    queue: JobQueue, want: int, limit: float, during: Any = None
) -> list[tuple[Candidate, float]]:
    """Run discovery until `want` distinct files were yielded; each with when it came."""
    found: dict[str, tuple[Candidate, float]] = {}
    stop = anyio.Event()
    with anyio.fail_after(limit):
        async with anyio.create_task_group() as tg:
            if during is not None:
                tg.start_soon(during)
            async with aclosing(queue.discover(stop)) as candidates:
                async for candidate in candidates:
                    found.setdefault(candidate.name, (candidate, time.monotonic()))
                    if len(found) >= want:
                        stop.set()
            tg.cancel_scope.cancel()
    return list(found.values())


async def test_full_scan_at_start_finds_waiting_files(tmp_path: Path) -> None:
    queue = make_queue(tmp_path)
    for name in ["a.json", "b.csv", ".c.json", "d.tmp"]:
        (queue.paths.inbox / name).write_text("x")
    found = await first_candidates(queue, 2, limit=5)
    assert sorted(c.name for c, _ in found) == ["a.json", "b.csv"]


async def test_file_event_picks_up_a_new_file_promptly(tmp_path: Path) -> None:
    queue = make_queue(tmp_path)
    dropped_at: list[float] = []

    async def drop() -> None:
        await anyio.sleep(0.5)  # discovery is watching by now
        tmp = queue.paths.inbox / ".new.json.tmp"
        tmp.write_text('{"v": 1}')
        tmp.rename(queue.paths.inbox / "new.json")  # the Maildir way
        dropped_at.append(time.monotonic())

    [(candidate, seen_at)] = await first_candidates(queue, 1, limit=10, during=drop)
    assert candidate.name == "new.json"
    assert seen_at - dropped_at[0] < 2.0  # rescan_interval is 30 s: this came from events


async def test_a_file_dropped_before_the_watch_begins_is_not_left_to_the_rescan(
    tmp_path: Path,
) -> None:
    """The watch starts only after the first scan: a drop in between raises no event."""
    queue = make_queue(tmp_path)  # rescan_interval 30 s: the limit below comes first
    first_scan = queue.scan

    def scan_then_drop() -> list[Candidate]:
        found = first_scan()
        queue.scan = first_scan  # type: ignore[method-assign]  # only the first time
        (queue.paths.inbox / "early.json").write_text("{}")
        return found

    queue.scan = scan_then_drop  # type: ignore[method-assign]
    [(candidate, _)] = await first_candidates(queue, 1, limit=10)
    assert candidate.name == "early.json"


async def test_renamed_file_skips_min_age_and_in_place_file_waits(tmp_path: Path) -> None:
    # min_age far beyond the time limit: only a completed rename seen in the file events can
    # bring a fresh file out; the in-place file cannot be ready before the test ends.
    queue = make_queue(tmp_path, min_age=30.0)

    async def drop() -> None:
        await anyio.sleep(0.5)  # discovery is watching by now
        (queue.paths.inbox / "in-place.json").write_text('{"v": 1}')
        await anyio.sleep(1.0)  # its events come in a batch of their own
        tmp = queue.paths.inbox / ".renamed.json.tmp"
        tmp.write_text('{"v": 2}')
        tmp.rename(queue.paths.inbox / "renamed.json")  # the Maildir way

    [(candidate, _)] = await first_candidates(queue, 1, limit=10, during=drop)
    assert candidate.name == "renamed.json"
    assert await queue.claim(candidate) is not None
    assert queue.scan() == []  # in-place.json: seen, fresh, not vouched for
    assert queue.pending_wait() is not None


async def test_polling_mode_picks_up_a_new_file(tmp_path: Path) -> None:
    queue = make_queue(tmp_path, queue_polling=True, poll_interval=0.1)
    dropped_at: list[float] = []

    async def drop() -> None:
        await anyio.sleep(0.3)
        (queue.paths.inbox / "polled.csv").write_text("identity,audio\n")
        dropped_at.append(time.monotonic())

    [(candidate, seen_at)] = await first_candidates(queue, 1, limit=10, during=drop)
    assert candidate.name == "polled.csv"
    assert seen_at - dropped_at[0] < 1.0


async def test_half_written_file_is_not_claimed_until_stable(tmp_path: Path) -> None:
    queue = make_queue(tmp_path, min_age=0.3, queue_polling=True, poll_interval=0.05)
    path = queue.paths.inbox / "growing.csv"
    last_write: list[float] = []
    finished = anyio.Event()

    async def write_in_place() -> None:
        with path.open("w") as fh:
            fh.write("identity,audio\n")
            for i in range(12):
                fh.write(f"id{i},a{i}.wav\n")
                fh.flush()
                last_write[:] = [time.monotonic()]
                await anyio.sleep(0.1)
        finished.set()

    [(candidate, seen_at)] = await first_candidates(queue, 1, limit=10, during=write_in_place)
    assert finished.is_set(), "yielded while the producer was still writing"
    assert seen_at - last_write[0] >= 0.25  # rested min_age (0.3 s) after the last write
    job = await queue.claim(candidate)
    assert job is not None
    assert job.manifest_path.read_text().count("\n") == 13  # whole, not half


async def test_bad_entries_never_stop_discovery(tmp_path: Path) -> None:
    queue = make_queue(tmp_path)
    (queue.paths.inbox / "dir.json").mkdir()
    (queue.paths.inbox / "dangling.json").symlink_to(tmp_path / "nowhere")
    (queue.paths.inbox / "notes.txt").write_text("x")

    async def drop() -> None:
        await anyio.sleep(0.3)
        (queue.paths.inbox / "good.json").write_text("{}")

    [(candidate, _)] = await first_candidates(queue, 1, limit=10, during=drop)
    assert candidate.name == "good.json"


async def test_vanished_candidate_claims_nothing(tmp_path: Path) -> None:
    queue = make_queue(tmp_path)
    (queue.paths.inbox / "a.json").write_text("{}")
    [(candidate, _)] = await first_candidates(queue, 1, limit=5)
    candidate.path.unlink()
    assert await queue.claim(candidate) is None


async def test_claimed_files_are_not_yielded_again(tmp_path: Path) -> None:
    queue = make_queue(tmp_path, queue_polling=True, poll_interval=0.05)
    for i in range(5):
        (queue.paths.inbox / f"m{i}.json").write_text(str(i))
    seen: list[str] = []
    stop = anyio.Event()
    with anyio.fail_after(10):
        async with aclosing(queue.discover(stop)) as candidates:
            async for candidate in candidates:
                seen.append(candidate.name)
                assert await queue.claim(candidate) is not None
                if len(seen) == 5:
                    # a few more polls must bring nothing new
                    with anyio.move_on_after(0.3):
                        async for extra in candidates:
                            seen.append(extra.name)
                    break
    assert sorted(seen) == [f"m{i}.json" for i in range(5)]
