"""The disk refuses a write the worker depends on (ENOSPC, EIO), injected at the one seam that
makes each write: a journal append (`JobSeams.journal_write`), a report write
(`JobSeams.report_writer`), a lease renewal (`JobQueue(write_lease=...)`). Real emulator, real
queue; the worker in-process so the seam can be passed. The job must be checkpointed, not
marked done nor failed, and the next run must finish it with nothing redone and nothing
charged twice.
"""

from __future__ import annotations

import contextlib
import errno
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import anyio

from tests.emulator_harness import EmulatorHandle
from tests.support import drop, job_manifest, make_queue, make_settings, names, run_once
from worker.base.fsutil import atomic_write_json
from worker.job.seams import JobSeams
from worker.journal.writer import write_and_fsync
from worker.queue.jobqueue import JobQueue

IDS = [f"disk-{i}" for i in range(6)]


def disk_queue(root: Path) -> Path:
    queue = make_queue(root, IDS)
    drop(queue, "disk.json", job_manifest(IDS), maildir=False)
    return queue


def full_disk(code: int = errno.ENOSPC) -> OSError:
    return OSError(code, "No space left on device" if code == errno.ENOSPC else "I/O error")


def journal_fails_after(n: int) -> Callable[[int, bytes], None]:
    calls = [0]

    def write(fd: int, data: bytes) -> None:
        calls[0] += 1
        if calls[0] > n:
            raise full_disk()
        write_and_fsync(fd, data)

    return write


@contextlib.contextmanager
def refused_report_writes(path: Path) -> Iterator[IO[bytes]]:
    raise full_disk()
    yield  # pragma: no cover


def lease_writes_fail(real: Callable[..., None]) -> Callable[..., None]:
    def write(path: Path, document: Any, *args: Any, **kwargs: Any) -> None:
        if path.name.startswith("lease."):
            raise full_disk(errno.EIO)
        real(path, document, *args, **kwargs)

    return write


async def assert_resumes_and_finishes_once(queue: Path, emulator: EmulatorHandle) -> None:
    # Checkpointed: still active (a later start resumes it), neither done nor failed.
    assert len(names(queue / "active")) == 1
    assert names(queue / "done") == names(queue / "failed") == []
    assert list((queue / "reports").glob("*.report.json")) == []
    with anyio.fail_after(60):
        assert await run_once(make_settings(queue, emulator.base_url, lease_ttl=0.5)) == 0
    [report] = (queue / "reports").glob("*.report.json")
    rows = json.loads(report.read_text())["enrollments"]
    assert sorted(r["identity"] for r in rows) == IDS
    assert {r["outcome"] for r in rows} == {"enrolled"}
    assert len(names(queue / "done")) == 1 and names(queue / "active") == []
    stats = await emulator.stats()
    assert stats["created"]["computes"] == stats["created"]["voiceprints"] == len(IDS)
    assert stats["created"]["audios"] == len(IDS)  # nothing redone


async def test_enospc_on_a_journal_append_checkpoints_the_job(
    tmp_path: Path, emulator: EmulatorHandle
) -> None:
    queue = disk_queue(tmp_path / "queue")
    settings = make_settings(queue, emulator.base_url, rate_limit=50, lease_ttl=0.5)
    await run_once(settings, seams=JobSeams(journal_write=journal_fails_after(8)))
    await assert_resumes_and_finishes_once(queue, emulator)


async def test_enospc_on_the_report_write_checkpoints_the_job(
    tmp_path: Path, emulator: EmulatorHandle
) -> None:
    queue = disk_queue(tmp_path / "queue")
    settings = make_settings(queue, emulator.base_url, lease_ttl=0.5)
    await run_once(settings, seams=JobSeams(report_writer=refused_report_writes))
    await assert_resumes_and_finishes_once(queue, emulator)


async def test_eio_on_every_lease_renewal_stops_the_job_before_its_lease_goes_stale(
    tmp_path: Path, emulator: EmulatorHandle
) -> None:
    queue = disk_queue(tmp_path / "queue")
    # Slow enough that the lease (ttl 0.5 s, renewed every 0.17 s) is lost mid-job.
    settings = make_settings(queue, emulator.base_url, rate_limit=10, burst=1, lease_ttl=0.5)
    failing = JobQueue(settings, write_lease=lease_writes_fail(atomic_write_json))
    await run_once(settings, queue=failing)
    await assert_resumes_and_finishes_once(queue, emulator)
