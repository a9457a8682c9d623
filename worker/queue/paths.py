"""Where everything of the spool directory (design.md §3) lives, and the folders' set-up.

Owns: the names and the path arithmetic (pure, no I/O) and `setup_folders`, the one check that
the folders exist, are writable and rename into each other. It never moves a job (claim.py),
never reads or writes a lease (lease.py) and never scans the inbox (discover.py).

On-disk layout::

    inbox/x.json                        dropped by a producer (dot-names, *.tmp, *.part ignored)
    active/.claim-<token>/              a claim being settled (seconds at most)
        lease.0.json                    written BEFORE the claim rename, so the dir is never
                                        unowned
        manifest/x.json                 the claim: ONE rename(inbox/x -> here)
    active/<job_id>/                    a claimed job; <job_id> = <stem>-<sha256[:10]>
        lease.<gen>.json                the lease; the highest generation is the current one
        manifest/x.json                 the manifest under its original name (never clashes
                                        with the files below, whatever producers call it)
        journal.jsonl                   written by the engine (`ClaimedJob.journal_path`)
        progress.json                   optional, written by the engine, read by `status`
    done/<job_id>.<ext>                 finished (every enrollment ended, well or not)
    failed/<job_id>.<ext>               could not be run at all, beside
    failed/<job_id>.error.json          {job_id, file, problems: [...], failed_at}
    reports/<job_id>.report.json | .failures.csv | .retry.json
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from worker.base.errors import WorkerMustStop
from worker.queue.rules import SETUP_PROBE_PREFIX

FOLDERS = ("inbox", "active", "done", "failed", "reports")
STAGING_PREFIX = ".claim-"
MANIFEST_DIR = "manifest"
JOURNAL_NAME = "journal.jsonl"
PROGRESS_NAME = "progress.json"
STARTS_NAME = "starts.json"  # the poison-pill counter (worker/job/starts.py)
LEASE_RE = re.compile(r"^lease\.(\d+)\.json$")


class QueueSetupError(WorkerMustStop):
    """The queue directory cannot work as configured (missing rights, folders on two mounts)."""


@dataclass(frozen=True)
class QueuePaths:
    """Where each queue folder and per-job file lives; pure path arithmetic, no I/O."""

    root: Path

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def active(self) -> Path:
        return self.root / "active"

    @property
    def done(self) -> Path:
        return self.root / "done"

    @property
    def failed(self) -> Path:
        return self.root / "failed"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def job_dir(self, job_id: str) -> Path:
        """Where an active job lives (its manifest, lease, journal and progress)."""
        return self.active / job_id

    def folders(self) -> dict[str, Path]:
        return {name: self.root / name for name in FOLDERS}

    def report_paths(self, job_id: str) -> ReportPaths:
        return ReportPaths(
            report=self.reports / f"{job_id}.report.json",
            failures=self.reports / f"{job_id}.failures.csv",
            retry=self.reports / f"{job_id}.retry.json",
        )

    def error_path(self, job_id: str) -> Path:
        return self.failed / f"{job_id}.error.json"


@dataclass(frozen=True)
class ReportPaths:
    """The three report files of a job (design.md §3); `worker.job.report` writes them."""

    report: Path
    failures: Path
    retry: Path


@dataclass(frozen=True)
class ClaimedJob:
    """A job this worker holds the lease of. Everything the engine needs to run it."""

    job_id: str
    dir: Path  # active/<job_id>
    name: str  # the file name the producer dropped
    sha256: str  # of the manifest content
    token: str  # our lease token
    generation: int  # our lease generation
    resumed: bool  # taken over from a stale lease: the journal may hold earlier progress

    @property
    def manifest_path(self) -> Path:
        return self.dir / MANIFEST_DIR / self.name

    @property
    def journal_path(self) -> Path:
        return self.dir / JOURNAL_NAME

    @property
    def progress_path(self) -> Path:
        return self.dir / PROGRESS_NAME

    @property
    def lease_path(self) -> Path:
        return lease_file(self.dir, self.generation)

    @property
    def starts_path(self) -> Path:
        return self.dir / STARTS_NAME


def lease_file(job_dir: Path, generation: int) -> Path:
    return job_dir / f"lease.{generation}.json"


def setup_folders(paths: QueuePaths, rename: Callable[[Path, Path], None] = os.rename) -> None:
    """Create the folders if missing; prove they are writable and renames between them work.

    Raises QueueSetupError with a message an operator can act on. A real rename probe is
    used because two bind mounts of one filesystem share a device number yet still refuse
    renames between them (EXDEV). `rename` makes the probe (a test passes one that refuses).
    """
    folders = paths.folders()
    for path in folders.values():
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise QueueSetupError(f"queue folder {path} cannot be created: {exc.strerror}") from exc
    probe_name = f"{SETUP_PROBE_PREFIX}{secrets.token_hex(6)}.tmp"
    here = folders["inbox"] / probe_name
    try:
        fd = os.open(here, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.close(fd)
    except OSError as exc:
        raise QueueSetupError(
            f"queue folder {folders['inbox']} is not writable: {exc.strerror}"
        ) from exc
    try:
        for name, path in folders.items():
            if name == "inbox":
                continue
            there = path / probe_name
            try:
                rename(here, there)
            except OSError as exc:
                if exc.errno == errno.EXDEV:
                    raise QueueSetupError(
                        f"queue folders {here.parent} and {path} are on different "
                        "filesystems or mounts (EXDEV): rename between them is not atomic; "
                        "put all of inbox/ active/ done/ failed/ reports/ on one volume"
                    ) from exc
                raise QueueSetupError(
                    f"queue folder {path} is not writable: {exc.strerror}"
                ) from exc
            here = there
    finally:
        with contextlib.suppress(OSError):
            os.unlink(here)
