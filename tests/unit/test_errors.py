"""The worker's error tree (worker/base/errors.py, issue 26): every exception class the worker
defines outside worker/api/ is of exactly one kind, and the job's boundary gives each kind its
fate. The classes are found by importing every module of worker/, so a new class that forgets
its kind fails here; the walk is checked to find the known ones, so it cannot pass by finding
nothing."""

from __future__ import annotations

import errno
import importlib
import pkgutil
import sqlite3
from pathlib import Path

import pytest

import worker
from worker.api import errors as api_errors
from worker.base.crashpoints import InjectedFault
from worker.base.errors import (
    KINDS,
    EnrollerError,
    EnrollmentFailed,
    JobMustCheckpoint,
    JobMustFail,
    JobMustWait,
    JobNoLongerHeld,
    WorkerMustStop,
)
from worker.job.boundary import Fate, fate
from worker.journal.index import JournalIndex, JournalIndexFailed

# Outside the tree on purpose, with the reason.
EXEMPT = {
    # It stands for a bug nobody expects (tests raise it to prove the boundary holds against
    # an exception of any class), so it must not be of a kind the boundary knows.
    "worker.base.crashpoints.InjectedFault",
}

# What the walk must find at least: the classes the tree was made for.
KNOWN = {
    "worker.audio.decode.DecodeError": EnrollmentFailed,
    "worker.audio.files.AudioChanged": EnrollmentFailed,
    "worker.audio.files.AudioUnreadable": EnrollmentFailed,
    "worker.base.fsutil.NotRegularFile": JobMustFail,
    "worker.commands.submit.SubmitRefused": JobMustFail,
    "worker.config.keyfile.KeyFileProblem": WorkerMustStop,
    "worker.config.loading.InvalidSettings": WorkerMustStop,
    "worker.enrollment.driver.FatalApiError": WorkerMustStop,
    "worker.enrollment.waiting.ApiAskedToWait": JobMustCheckpoint,
    "worker.base.errors.JobMustWait": JobMustCheckpoint,
    "worker.journal.index.JournalIndexFailed": JobMustCheckpoint,
    "worker.journal.records.JournalCorrupt": JobMustFail,
    "worker.journal.writer.JournalWriteFailed": JobMustCheckpoint,
    "worker.manifest.csvscan.CsvChanged": JobMustFail,
    "worker.manifest.jsonscan.JsonScanError": JobMustFail,
    "worker.queue.lease.LeaseLost": JobMustCheckpoint,
    "worker.queue.paths.QueueSetupError": WorkerMustStop,
    "worker.service.FatalError": WorkerMustStop,
}

FATE_OF_KIND = {
    WorkerMustStop: Fate.STOP_WORKER,
    JobMustFail: Fate.FAIL,
    JobMustCheckpoint: Fate.CHECKPOINT,
    EnrollmentFailed: Fate.FAIL,  # one nobody caught is a bug of the job
}


def _worker_exceptions() -> dict[str, type[BaseException]]:
    """Dotted name → class, for every exception class defined in a module of worker/ but api/."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(worker.__path__, prefix="worker."):
        if info.name == "worker.__main__" or info.name.startswith("worker.api"):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == info.name
            ):
                found[f"{info.name}.{value.__qualname__}"] = value
    return found


WORKER_EXCEPTIONS = _worker_exceptions()
IN_TREE = {
    n: c
    for n, c in WORKER_EXCEPTIONS.items()
    if n not in EXEMPT and c is not EnrollerError and c not in KINDS
}


def _bare(cls: type[BaseException]) -> Exception:
    """An instance without running its `__init__` (the constructors differ; the class decides)."""
    exc = cls.__new__(cls)
    assert isinstance(exc, Exception)
    return exc


def test_the_walk_finds_every_known_class() -> None:
    assert set(KNOWN) <= set(WORKER_EXCEPTIONS), set(KNOWN) - set(WORKER_EXCEPTIONS)
    assert set(EXEMPT) <= set(WORKER_EXCEPTIONS)


@pytest.mark.parametrize("name", sorted(IN_TREE))
def test_each_worker_exception_is_of_exactly_one_kind(name: str) -> None:
    cls = IN_TREE[name]
    kinds = [kind for kind in KINDS if issubclass(cls, kind)]
    assert len(kinds) == 1, f"{name} is of {kinds}"
    if name in KNOWN:
        assert kinds == [KNOWN[name]]


@pytest.mark.parametrize("name", sorted(IN_TREE))
def test_the_boundary_gives_each_worker_exception_the_fate_of_its_kind(name: str) -> None:
    cls = IN_TREE[name]
    [kind] = [kind for kind in KINDS if issubclass(cls, kind)]
    expected = Fate.HAND_OFF if issubclass(cls, JobNoLongerHeld) else FATE_OF_KIND[kind]
    if issubclass(cls, JobMustWait):
        expected = Fate.WAIT  # a checkpoint that is a clean stop (issue 27: the API said wait)
    assert fate(_bare(cls)) is expected


def test_the_kinds_are_four_under_one_root_and_apart_from_the_api_tree() -> None:
    assert len(KINDS) == 4 and all(issubclass(k, EnrollerError) for k in KINDS)
    assert issubclass(JobNoLongerHeld, JobMustCheckpoint)
    for a in KINDS:
        assert [b for b in KINDS if issubclass(a, b)] == [a]
    assert not issubclass(api_errors.ApiError, EnrollerError)
    assert not issubclass(EnrollerError, api_errors.ApiError)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (WorkerMustStop("credentials revoked"), Fate.STOP_WORKER),
        (JobMustFail("manifest unusable"), Fate.FAIL),
        (JobMustCheckpoint("disk refused"), Fate.CHECKPOINT),
        (JobNoLongerHeld("lease taken over"), Fate.HAND_OFF),
        (EnrollmentFailed("one audio"), Fate.FAIL),
        # Outside the tree: a disk's OSError checkpoints (a report write), any other fails.
        (OSError(errno.ENOSPC, "No space left on device"), Fate.CHECKPOINT),
        (OSError(errno.EIO, "I/O error"), Fate.CHECKPOINT),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), Fate.CHECKPOINT),
        (OSError(errno.EROFS, "Read-only file system"), Fate.CHECKPOINT),
        (PermissionError(errno.EACCES, "Permission denied"), Fate.FAIL),
        (FileNotFoundError(errno.ENOENT, "No such file"), Fate.FAIL),
        (RuntimeError("a parser bug"), Fate.FAIL),
        (InjectedFault("fault injected at job.started"), Fate.FAIL),
        (api_errors.InvalidResponse("not JSON"), Fate.FAIL),
        (sqlite3.OperationalError("database or disk is full"), Fate.FAIL),  # the index wraps it
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_the_boundary_reads_the_kind_not_the_module(exc: Exception, expected: Fate) -> None:
    assert fate(exc) is expected


def test_the_tree_wins_over_an_errno() -> None:
    from worker.base.fsutil import NotRegularFile

    # A FIFO named as a manifest is the job's fault, whatever errno it carries.
    assert fate(NotRegularFile(errno.EIO, "a FIFO, not a regular file", "x")) is Fate.FAIL


def test_an_index_whose_sqlite_fails_raises_journal_index_failed(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    journal.write_text("")
    index = JournalIndex(journal, tmp_path / "index")
    index.close()  # any later query is a sqlite3.Error
    with pytest.raises(JournalIndexFailed, match=r"^journal index: ") as caught:
        _ = "demo/main/a/main" in index
    assert not isinstance(caught.value, OSError) and not caught.value.disk_full
    assert caught.value.reason and fate(caught.value) is Fate.CHECKPOINT


def test_journal_index_failed_says_whether_the_disk_was_full() -> None:
    full = JournalIndexFailed(sqlite3.OperationalError("database or disk is full"))
    assert full.disk_full and full.reason == "database or disk is full"
    assert str(full) == "journal index: database or disk is full"
    assert not JournalIndexFailed(sqlite3.DatabaseError("malformed")).disk_full
