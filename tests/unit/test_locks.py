"""Locks: per file within a process, per key across processes (real flock, real processes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from tests.support import wait_for
from worker.enrollment.locks import AudioLocks, EnrollmentLocks, FileLocks
from worker.enrollment.view import AudioSeen

HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)  # holds the lock until the test kills it (it never sleeps this out)
"""


@pytest.fixture
def refusals() -> list[Path]:
    """Every attempt on a lock file that found it held elsewhere, in order (by its path): the
    event that proves a waiter is waiting, where a sleep could only hope so. Given to the
    locks under test as their `on_refused`."""
    return []


async def test_audio_locks_let_one_holder_in_at_a_time_per_file() -> None:
    locks = AudioLocks()
    inside: list[str] = []
    most = 0

    async def use(key: str) -> None:
        nonlocal most
        async with locks.hold(key):
            inside.append(key)
            most = max(most, inside.count("a/f1"))
            await anyio.sleep(0.01)  # kept: a holder's work, during which the others try
            inside.remove(key)

    async with anyio.create_task_group() as tg:
        for key in ("a/f1", "a/f1", "a/f1", "a/f2"):
            tg.start_soon(use, key)
    assert most == 1 and locks._entries == {}  # nobody left holding or waiting


def test_audio_locks_remember_a_bounded_number_of_audios() -> None:
    locks = AudioLocks(remember=2)
    for n in range(3):
        locks.learn(f"k{n}", AudioSeen(f"h{n}", "available"))
    assert locks.known("k0") is None and locks.known("k2") == AudioSeen("h2", "available")


async def test_a_file_lock_waits_for_another_process_and_the_kernel_frees_it_on_kill(
    tmp_path: Path, refusals: list[Path]
) -> None:
    locks = FileLocks(tmp_path / ".locks", on_refused=refusals.append)
    path = locks.path("acme/main/cust-1")
    path.parent.mkdir(parents=True)
    async with await anyio.open_process(
        [sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE
    ) as holder:
        assert holder.stdout is not None
        with anyio.fail_after(10):
            assert (await holder.stdout.receive()).strip() == b"locked"
        got = anyio.Event()

        async def take() -> None:
            async with locks.hold("acme/main/cust-1"):
                got.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(take)
            # Refused three times by the other process's flock, and still waiting.
            await wait_for(lambda: refusals.count(path) >= 3, 10, "three refused attempts")
            assert not got.is_set()  # the other process holds it
            holder.kill()  # SIGKILL: no cleanup of its own, the kernel drops the lock
            with anyio.fail_after(10):
                await got.wait()
    assert not path.exists()  # the last holder removed it


async def test_tasks_of_one_process_share_the_hold(tmp_path: Path) -> None:
    locks = FileLocks(tmp_path / ".locks")
    both = anyio.Event()
    inside = 0

    async def use() -> None:
        nonlocal inside
        async with locks.hold("k"):
            inside += 1
            if inside == 2:
                both.set()
            with anyio.fail_after(5):
                await both.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(use)
        tg.start_soon(use)
    assert both.is_set() and not locks.path("k").exists()


async def test_a_waiter_on_a_removed_lock_file_takes_the_new_one(
    tmp_path: Path, refusals: list[Path]
) -> None:
    # One FileLocks per "process": the second waits on the file the first will remove.
    first = FileLocks(tmp_path, on_refused=refusals.append)
    second = FileLocks(tmp_path, on_refused=refusals.append)
    order: list[str] = []
    holding, released = anyio.Event(), anyio.Event()

    async def hold_first() -> None:
        async with first.hold("k"):
            order.append("first")
            holding.set()
            await released.wait()

    async def hold_second() -> None:
        async with second.hold("k"):
            order.append("second")
            assert first.path("k").exists()

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold_first)
        await holding.wait()  # the first holds it (a loaded machine may take a while)
        tg.start_soon(hold_second)
        # The second has opened the file the first holds, and was refused: it is waiting on it.
        await wait_for(lambda: refusals, 10, "the second refused")
        assert order == ["first"]
        released.set()
    assert order == ["first", "second"]


@pytest.mark.parametrize("key", ["acme/main/cust-1", "x" * 500, "ünï/cødé"])
def test_lock_file_names_are_short_and_safe(tmp_path: Path, key: str) -> None:
    name = FileLocks(tmp_path).path(key).name
    assert len(name) == 37 and name.endswith(".lock") and "/" not in name


async def test_enrollment_locks_order_processes_by_identity_and_tasks_by_voiceprint(
    tmp_path: Path,
) -> None:
    # Two EnrollmentLocks on one directory stand for two processes sharing a queue.
    here, there = (EnrollmentLocks(FileLocks(tmp_path)) for _ in range(2))
    inside: list[str] = []
    overlaps: list[tuple[str, ...]] = []
    here_holds = anyio.Event()  # this "process" holds the identity's file lock

    async def enroll(locks: EnrollmentLocks, who: str, key: str) -> None:
        async with locks.hold(key):
            inside.append(who)
            overlaps.append(tuple(sorted(inside)))
            here_holds.set()
            await anyio.sleep(0.05)  # kept: the enrollment's work, while the others try
            inside.remove(who)

    async with anyio.create_task_group() as tg:
        tg.start_soon(enroll, here, "here-vp1", "acme/main/ann/vp1")
        tg.start_soon(enroll, here, "here-vp2", "acme/main/ann/vp2")  # same process: together
        tg.start_soon(enroll, here, "here-vp1-again", "acme/main/ann/vp1")  # same voiceprint
        await here_holds.wait()
        tg.start_soon(enroll, there, "there-vp3", "acme/main/ann/vp3")  # other process: waits
    assert ("here-vp1", "here-vp2") in overlaps
    assert not any("here-vp1" in o and "here-vp1-again" in o for o in overlaps)
    assert not any("there-vp3" in o and len(o) > 1 for o in overlaps)
