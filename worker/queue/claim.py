"""Claims and the moves of a job: inbox/ → active/ (claim, settle), active/ → done/ or failed/
(finish, fail), and taking stale jobs over (recover).

Owns: every rename of a manifest or a job directory. It asks lease.py for the lease at each
step and never writes one itself; it never parses a manifest and never calls the API.

Claim, step by step; a `kill -9` between any two steps loses nothing and never yields two
holders, because every state is either in inbox/ (anyone may claim it) or in a directory of
active/ that carries a lease (taken over once stale):

1. `mkdir active/.claim-<token>/manifest`, then create `lease.0.json` in it.
2. `rename(inbox/x -> active/.claim-<token>/manifest/x)`: the claim. Exactly one worker's rename
   finds the source; `ENOENT` means another worker won (not an error). `EXDEV` means the folders
   are on different filesystems or mounts: a setup error.
3. Hash the manifest, then `rename(active/.claim-<token> -> active/<job_id>)`. If a job with that
   id (same name, same content) is already active, the copy goes to done/ as a duplicate: the
   active one is running exactly that upsert.

A stale staging directory is renamed to the taker's own staging name first, so the previous
claimer's pending rename can no longer land in it; what it then contains is authoritative.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import structlog

from worker.base.fsutil import atomic_write_json, fsync_dir, sha256_file
from worker.queue.discover import Candidate, InboxNotes
from worker.queue.lease import LeaseHolder, LeaseLost, read_lease, utcnow
from worker.queue.paths import (
    MANIFEST_DIR,
    STAGING_PREFIX,
    ClaimedJob,
    QueuePaths,
    QueueSetupError,
    lease_file,
)
from worker.queue.rules import StabilityTracker, job_id_for, lease_age, safe_stem

log = structlog.get_logger(__name__)

# Called with a step name ("staged", "claimed", "hashed", "settled") between the steps of a
# claim, so a test can kill the process (os._exit) at every instant the docstring promises to
# survive. None in production (`JobQueue(crash_hook=...)`).
CrashHook = Callable[[str], None]
# How a claimed manifest is hashed (`JobQueue(hash_file=...)`): `sha256_file` in production.
HashFile = Callable[[Path], str]


class Claims:
    """Claim, settle, recover, finish and fail, holding leases through `leases`.

    `tracker` and `notes` are shared with discovery (a claimed name is forgotten; a file that
    cannot be claimed is said once). `crash_hook` and `hash_file` are the test seams above.
    """

    def __init__(
        self,
        paths: QueuePaths,
        leases: LeaseHolder,
        *,
        tracker: StabilityTracker,
        notes: InboxNotes,
        clock: Callable[[], float],
        crash_hook: CrashHook | None = None,
        hash_file: HashFile = sha256_file,
    ) -> None:
        self.paths = paths
        self._leases = leases
        self._tracker = tracker
        self._notes = notes
        self._clock = clock
        self._crash_hook = crash_hook
        self._hash_file = hash_file

    def _checkpoint(self, step: str) -> None:
        if self._crash_hook is not None:
            self._crash_hook(step)

    async def claim(self, candidate: Candidate) -> ClaimedJob | None:
        """Claim a candidate; None when another worker won or the file is gone."""
        return await anyio.to_thread.run_sync(self.claim_sync, candidate)

    def claim_sync(self, candidate: Candidate) -> ClaimedJob | None:
        """Blocking `claim`; see the module docstring for the steps and why each is safe."""
        self._tracker.forget(candidate.name)
        token = secrets.token_hex(8)
        staging = self.paths.active / f"{STAGING_PREFIX}{token}"
        try:
            (staging / MANIFEST_DIR).mkdir(parents=True)
            if not self._leases.try_acquire(staging, 0, token):
                raise OSError(errno.EEXIST, "fresh staging directory already leased")
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise QueueSetupError(
                f"queue folder {self.paths.active} is not writable: {exc.strerror}"
            ) from exc
        self._checkpoint("staged")
        try:
            os.rename(candidate.path, staging / MANIFEST_DIR / candidate.name)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if exc.errno == errno.ENOENT:
                return None  # another worker won the rename, or the producer took it back
            if exc.errno == errno.EXDEV:
                raise QueueSetupError(
                    f"{self.paths.inbox} and {self.paths.active} are on different filesystems "
                    "or mounts (EXDEV): put all queue folders on one volume"
                ) from exc
            self._notes.note(candidate.name, f"cannot be claimed: {exc.strerror}")
            return None
        self._checkpoint("claimed")
        fsync_dir(self.paths.inbox)
        return self._settle(staging, token, 0, resumed=False)

    def _settle(self, staging: Path, token: str, gen: int, *, resumed: bool) -> ClaimedJob | None:
        """Turn a staging directory we hold into active/<job_id>, or dispose of it."""
        try:
            names = os.listdir(staging / MANIFEST_DIR)
        except FileNotFoundError:
            return None  # we stalled past lease_ttl and a taker moved our staging dir away
        if not names:
            shutil.rmtree(staging, ignore_errors=True)  # crashed before the claim rename
            return None
        name = names[0]
        manifest = staging / MANIFEST_DIR / name
        try:
            sha = self._hash_file(manifest)
        except FileNotFoundError:
            return None  # as above
        except OSError as exc:
            if not self._leases.holds(staging, gen, token):
                return None
            job_id = f"{safe_stem(name)}-x{token[:9]}"
            self._move_to_failed(
                staging, name, job_id, [f"{name}: cannot be read ({exc.strerror})"]
            )
            return None
        job_id = job_id_for(name, sha)
        target = self.paths.active / job_id
        self._checkpoint("hashed")
        try:
            os.rename(staging, target)
        except FileNotFoundError:
            return None  # we stalled past lease_ttl and a taker moved our staging dir away
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            if self._clear_leftover(target):
                return self._settle(staging, token, gen, resumed=resumed)
            dest = self.paths.done / f"{job_id}{Path(name).suffix}"
            os.rename(manifest, dest)
            fsync_dir(self.paths.done)
            shutil.rmtree(staging, ignore_errors=True)
            log.warning("queue_duplicate", job_id=job_id, file=name, moved_to=str(dest))
            return None
        fsync_dir(self.paths.active)
        self._checkpoint("settled")
        job = ClaimedJob(job_id, target, name, sha, token, gen, resumed)
        try:
            self._leases.assert_holder(job)
        except LeaseLost:
            return None
        log.info("queue_claimed", job_id=job_id, file=name, resumed=resumed, lease_gen=gen)
        return job

    def _clear_leftover(self, job_dir: Path) -> bool:
        """Remove an active job dir whose manifest is gone (an interrupted finish), if stale."""
        try:
            if os.listdir(job_dir / MANIFEST_DIR):
                return False
            gen, lease = read_lease(job_dir)
        except FileNotFoundError:
            return True  # vanished meanwhile: retry the rename
        if lease is not None and not self._leases.stale(job_dir.name, gen, lease):
            return False  # its holder is finishing it right now
        next_gen = -1 if gen is None else gen
        if not self._leases.try_acquire(job_dir, next_gen + 1, secrets.token_hex(8)):
            return False
        shutil.rmtree(job_dir, ignore_errors=True)
        return True

    async def recover_stale(self) -> list[ClaimedJob]:
        """Take over every job whose lease is stale (see `recover_stale_sync`)."""
        return await anyio.to_thread.run_sync(self.recover_stale_sync)

    def recover_stale_sync(self) -> list[ClaimedJob]:
        """Take over every stale job in active/, including this worker's previous incarnation.

        Call it at start and then every `lease_ttl / 2` or so. Interrupted claims are settled,
        interrupted finishes cleaned up. A problem with one entry is logged and skipped. If this
        process's own heartbeat fell behind, it may get its own job back under a new lease: the
        old `ClaimedJob`'s heartbeat then raises LeaseLost, and that run must stop.
        """
        jobs: list[ClaimedJob] = []
        try:
            entries = list(os.scandir(self.paths.active))
        except OSError as exc:
            log.error("queue_active_unlistable", error=exc.strerror)
            return jobs
        for entry in entries:
            try:
                if not entry.is_dir(follow_symlinks=False):
                    continue
                if entry.name.startswith(".") and not entry.name.startswith(STAGING_PREFIX):
                    continue
                job = self._recover_one(Path(entry.path))
            except (FileNotFoundError, LeaseLost):
                continue  # finished or taken by someone else meanwhile
            except OSError as exc:
                log.warning("queue_recover_failed", entry=entry.name, error=exc.strerror)
                continue
            if job is not None:
                jobs.append(job)
        return jobs

    def _recover_one(self, job_dir: Path) -> ClaimedJob | None:
        now = self._clock()
        gen, lease = read_lease(job_dir)
        if lease is not None:
            if not self._leases.stale(job_dir.name, gen, lease):
                return None
            previous = {"holder": lease.holder, "age": round(lease_age(lease, now), 3)}
        else:
            # No readable lease: judge by the file times (a lease-less staging dir is being set
            # up right now, or its creator died before writing the lease).
            probe = job_dir if gen is None else lease_file(job_dir, gen)
            if now - probe.stat().st_mtime <= self._leases.lease_ttl:
                return None
            previous = {"holder": None, "age": None}
        token = secrets.token_hex(8)
        new_gen = 0 if gen is None else gen + 1
        if not self._leases.try_acquire(job_dir, new_gen, token):
            return None
        log.info("queue_lease_taken_over", entry=job_dir.name, lease_gen=new_gen, **previous)
        self._leases.tidy(job_dir, new_gen)
        if job_dir.name.startswith(STAGING_PREFIX):
            mine = self.paths.active / f"{STAGING_PREFIX}{token}"
            os.rename(job_dir, mine)  # the stale claimer's pending rename can no longer land
            fsync_dir(self.paths.active)
            return self._settle(mine, token, new_gen, resumed=True)
        names = os.listdir(job_dir / MANIFEST_DIR) if (job_dir / MANIFEST_DIR).is_dir() else []
        if not names:
            shutil.rmtree(job_dir, ignore_errors=True)  # an interrupted finish
            return None
        name = names[0]
        try:
            sha = self._hash_file(job_dir / MANIFEST_DIR / name)
        except OSError as exc:
            problems = [f"{name}: cannot be read ({exc.strerror})"]
            self._move_to_failed(job_dir, name, job_dir.name, problems)
            return None
        job = ClaimedJob(
            job_id=job_dir.name,
            dir=job_dir,
            name=name,
            sha256=sha,
            token=token,
            generation=new_gen,
            resumed=True,
        )
        self._leases.assert_holder(job)
        return job

    async def finish(self, job: ClaimedJob) -> Path:
        """Move a job whose enrollments all ended to done/; returns the manifest's new path."""
        return await anyio.to_thread.run_sync(self.finish_sync, job)

    def finish_sync(self, job: ClaimedJob) -> Path:
        self._leases.assert_holder(job)
        dest = self.paths.done / f"{job.job_id}{Path(job.name).suffix}"
        os.rename(job.manifest_path, dest)
        fsync_dir(self.paths.done)
        self._remove_job_dir(job.dir)
        log.info("queue_done", job_id=job.job_id, file=job.name)
        return dest

    async def fail(
        self, job: ClaimedJob, problems: Sequence[Any], error: Mapping[str, Any] | None = None
    ) -> Path:
        """Move a job that could not be run at all to failed/, with its `.error.json` beside it.

        `error` (exception, message, phase) is given when the job crashed rather than being
        rejected for its content.
        """
        return await anyio.to_thread.run_sync(self.fail_sync, job, problems, error)

    def fail_sync(
        self, job: ClaimedJob, problems: Sequence[Any], error: Mapping[str, Any] | None = None
    ) -> Path:
        self._leases.assert_holder(job)
        dest = self._move_to_failed(job.dir, job.name, job.job_id, problems, error)
        log.warning("queue_failed", job_id=job.job_id, file=job.name, problems=len(problems))
        return dest

    def _move_to_failed(
        self,
        job_dir: Path,
        name: str,
        job_id: str,
        problems: Sequence[Any],
        error: Mapping[str, Any] | None = None,
    ) -> Path:
        # Error file first: a crash in between leaves the job in active/ to be failed again.
        document: dict[str, Any] = {
            "job_id": job_id,
            "file": name,
            "problems": list(problems),
            "failed_at": utcnow(),
        }
        if error is not None:
            document["error"] = dict(error)
        atomic_write_json(self.paths.error_path(job_id), document)
        dest = self.paths.failed / f"{job_id}{Path(name).suffix}"
        os.rename(job_dir / MANIFEST_DIR / name, dest)
        fsync_dir(self.paths.failed)
        self._remove_job_dir(job_dir)
        return dest

    def _remove_job_dir(self, job_dir: Path) -> None:
        shutil.rmtree(job_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            fsync_dir(self.paths.active)
