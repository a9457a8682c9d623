"""The spool directory (design.md §3): discover, claim, lease, finish, fail and recover jobs.

Owns: every file operation on `<queue_dir>/{inbox,active,done,failed,reports}` except the
contents of the journal and the reports, which belong to `journal.py` / `report.py` (this module
only tells them where to write). It never parses a manifest and never calls the API.

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

Lease protocol. Generations make takeover race-free: a lease file is only ever *created* by
`link(temp, lease.<gen>.json)`, which fails with `EEXIST` when another worker created that
generation first (an O_EXCL create that also publishes the full content at once; it works on
NFS). The holder renews `lease.<gen>.json` by atomic replace, and before every renewal checks
that no higher generation exists and that the file still carries its token; otherwise it has
lost the job (`LeaseLost`) and must stop. A worker that finds the highest lease stale (not
renewed within `lease_ttl`, or `released`) creates `lease.<gen+1>.json`; of two workers racing,
one gets `EEXIST`. A stale staging directory is renamed to the taker's own staging name first,
so the previous claimer's pending rename can no longer land in it; what it then contains is
authoritative. The one window left is a holder that stalls longer than `lease_ttl` (SIGSTOP, a
frozen VM) and then writes before its next renewal check: keep `lease_ttl` well above any
expected stall, and keep steps idempotent (design.md §4), which they are.

Discovery. A full scan at start, then file events (watchfiles) as hints that trigger scans, a
full rescan every `rescan_interval` whatever the events said, and a polling mode (NFS, bind
mounts) that only scans. A scan cannot tell a complete file from one a producer is still writing
in place, so a file is taken only once stable and `min_age` old (`StabilityTracker`). File events
can tell: a batch that renamed in-progress names (dot-names, `*.tmp`, `*.part`) to as many
manifests or more shows those manifests complete (`arrived_by_rename`), and the scan the batch
triggers takes them at once instead of `min_age` later. Polling never sees a rename, so it keeps
the stability rule for every file; so does a rename from outside inbox/ (no in-progress name is
deleted there).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import math
import os
import re
import secrets
import shutil
import socket
import stat
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import structlog
from pydantic import ValidationError

from worker.fsutil import atomic_write_json, dumps_json, fsync_dir, open_regular, temp_name_for
from worker.leaseguard import LeaseGuard
from worker.queue_rules import (
    SETUP_PROBE_PREFIX,
    EntryChange,
    FileStat,
    Lease,
    LeaseWatch,
    NameKind,
    StabilityTracker,
    arrived_by_rename,
    classify_name,
    job_id_for,
    lease_age,
    lease_is_stale,
    safe_stem,
)
from worker.settings import Settings

log = structlog.get_logger(__name__)

FOLDERS = ("inbox", "active", "done", "failed", "reports")
STAGING_PREFIX = ".claim-"
MANIFEST_DIR = "manifest"
JOURNAL_NAME = "journal.jsonl"
PROGRESS_NAME = "progress.json"
STARTS_NAME = "starts.json"  # the poison-pill counter (worker/jobstarts.py)
_LEASE_RE = re.compile(r"^lease\.(\d+)\.json$")
_HASH_CHUNK = 1 << 20

# Test seam: called with a step name between the steps of a claim, so a test can kill the
# process (os._exit) at every instant the docstring promises to survive. None in production.
crash_hook: Callable[[str], None] | None = None


def _checkpoint(step: str) -> None:
    if crash_hook is not None:
        crash_hook(step)


class QueueSetupError(Exception):
    """The queue directory cannot work as configured (missing rights, folders on two mounts)."""


class LeaseLost(Exception):
    """This worker no longer holds the job: another worker took it over. Stop working on it."""


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
    """The three report files of a job (design.md §3); `report.py` writes them."""

    report: Path
    failures: Path
    retry: Path


@dataclass(frozen=True)
class Candidate:
    """A file in inbox/ that is ready to claim: it passed the name and stability rules."""

    path: Path
    size: int
    mtime: float

    @property
    def name(self) -> str:
        return self.path.name


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


def lease_generations(job_dir: Path) -> list[int]:
    """The lease generations present in a job directory, lowest first."""
    gens = []
    for name in os.listdir(job_dir):
        match = _LEASE_RE.match(name)
        if match:
            gens.append(int(match.group(1)))
    return sorted(gens)


def read_lease(job_dir: Path) -> tuple[int | None, Lease | None]:
    """The current (highest) lease generation and its content; content None if unreadable."""
    gens = lease_generations(job_dir)
    if not gens:
        return None, None
    gen = gens[-1]
    try:
        return gen, Lease.model_validate_json(lease_file(job_dir, gen).read_bytes())
    except (OSError, ValidationError, ValueError):
        return gen, None


def sha256_file(path: Path) -> str:
    """Hash a claimed manifest; a FIFO or device swapped in raises instead of blocking."""
    digest = hashlib.sha256()
    with open_regular(path) as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _utcnow() -> datetime:
    return datetime.now(UTC)


class JobQueue:
    """One worker's view of a shared queue directory. Safe to use from many processes at once.

    Blocking file work lives in the `*_sync` methods (usable from threads and subprocesses);
    the async methods run them off the event loop.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.paths = QueuePaths(settings.queue_dir)
        self.worker_id = settings.worker_id
        self.lease_ttl = settings.lease_ttl
        self.polling = settings.queue_polling
        self.poll_interval = settings.poll_interval
        self.rescan_interval = settings.rescan_interval
        self._clock = clock
        self._tracker = StabilityTracker(settings.min_age)
        self._noted: dict[str, str] = {}  # inbox name -> reason already logged
        self._host = socket.gethostname()
        self._monotonic = monotonic
        self._watch = LeaseWatch()  # leases of other hosts, judged by our own clock

    # --- setup -----------------------------------------------------------------------------

    def setup(self) -> None:
        """Create the folders if missing; prove they are writable and renames between them work.

        Raises QueueSetupError with a message an operator can act on. A real rename probe is
        used because two bind mounts of one filesystem share a device number yet still refuse
        renames between them (EXDEV).
        """
        folders = self.paths.folders()
        for path in folders.values():
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise QueueSetupError(
                    f"queue folder {path} cannot be created: {exc.strerror}"
                ) from exc
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
                    os.rename(here, there)
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

    # --- discovery -------------------------------------------------------------------------

    def scan(self) -> list[Candidate]:
        """One scan of inbox/: the files ready to claim now. Never raises for a bad file."""
        inbox = self.paths.inbox
        stats: dict[str, FileStat] = {}
        present: set[str] = set()
        try:
            entries = list(os.scandir(inbox))
        except OSError as exc:
            self._note("", f"inbox cannot be listed: {exc.strerror}", level="error")
            return []
        for entry in entries:
            name = entry.name
            kind = classify_name(name)
            if kind is NameKind.IN_PROGRESS:
                continue
            present.add(name)
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # claimed or removed since the listing
            except OSError as exc:
                self._note(name, f"cannot be read: {exc.strerror}")
                continue
            if not stat.S_ISREG(st.st_mode):
                self._note(name, "not a regular file (directory or symlink); ignored")
                continue
            if kind is NameKind.OTHER:
                self._note(name, "not a .json or .csv manifest; ignored")
                continue
            stats[name] = FileStat(st.st_size, st.st_mtime_ns / 1e9, st.st_ino)
        for name in list(self._noted):
            if name and name not in present:
                del self._noted[name]  # a later file of the same name gets its own line
        ready = self._tracker.observe(stats, self._clock())
        return [Candidate(inbox / n, stats[n].size, stats[n].mtime) for n in ready]

    def _note(self, name: str, reason: str, level: str = "warning") -> None:
        if self._noted.get(name) == reason:
            return
        self._noted[name] = reason
        getattr(log, level)("queue_file_skipped", file=name or None, reason=reason)

    def pending_wait(self) -> float | None:
        """Seconds until an inbox file seen but not yet ready may become ready; None if none.

        For a drain (`run --once`): keep scanning while this is not None, sleeping this long.
        0.0 means a file only needs its second look.
        """
        return self._tracker.next_wait(self._clock())

    def _vouch_renamed(self, batch: Iterable[tuple[EntryChange, str]]) -> None:
        """Let the next scan take at once the manifests one event batch shows renamed in."""
        vouched = arrived_by_rename(batch)
        if vouched:
            self._tracker.vouch(vouched)
            log.debug("queue_renamed_in", files=sorted(vouched))

    def _next_scan_wait(self, default: float) -> float:
        wait = self._tracker.next_wait(self._clock())
        if wait is None:
            return default
        return min(default, max(wait, 0.05))

    async def discover(self, stop_event: anyio.Event) -> AsyncIterator[Candidate]:
        """Yield inbox files ready to claim until `stop_event` is set.

        A full scan at start; then file events (watchfiles) trigger scans, but only as hints:
        every `rescan_interval` a full scan runs anyway, and pending files are rescanned when
        they may have become stable. Each event batch also goes through `arrived_by_rename`
        before the scan it triggers, so a manifest dropped the Maildir way is taken by that scan
        without waiting `min_age`. With `queue_polling` (NFS, bind mounts, where events are
        unreliable) it scans every `poll_interval` instead, and every file waits for the
        stability rule (a scan cannot see a rename). A file still in inbox at the next scan (not
        claimed, e.g. the engine was full) is yielded again.
        """
        if self.polling:
            async for candidate in self._discover_polling(stop_event):
                yield candidate
            return
        # imported here: polling-only deployments never need it
        from watchfiles import Change, awatch

        kinds = {
            Change.added: EntryChange.ADDED,
            Change.modified: EntryChange.MODIFIED,
            Change.deleted: EntryChange.DELETED,
        }

        tick = min(0.5, self.rescan_interval)
        watcher = awatch(
            self.paths.inbox,
            watch_filter=None,
            debounce=100,
            step=20,
            stop_event=stop_event,
            rust_timeout=max(1, int(tick * 1000)),
            yield_on_timeout=True,
            recursive=False,
            ignore_permission_denied=True,
        )
        fall_back = False
        try:
            next_rescan = time.monotonic() + self.rescan_interval
            scan_due = True  # the full scan at start
            # The watch only begins with the first `__anext__`: a file dropped between the
            # first scan and then raises no event, so the first answer triggers another scan.
            watching = False
            while not stop_event.is_set():
                if scan_due:
                    # Scan; while a pending file may become ready sooner than the watcher's
                    # next tick (a renamed file just needs its second look), scan again.
                    while True:
                        for candidate in await anyio.to_thread.run_sync(self.scan):
                            if stop_event.is_set():
                                return
                            yield candidate
                        wait = self._tracker.next_wait(self._clock())
                        if wait is None or wait >= tick or stop_event.is_set():
                            break
                        with anyio.move_on_after(max(wait, 0.05)):
                            await stop_event.wait()
                    next_check = time.monotonic() + (wait if wait is not None else math.inf)
                try:
                    changes = await watcher.__anext__()
                except StopAsyncIteration:
                    return
                except (OSError, RuntimeError) as exc:
                    log.warning("queue_events_unavailable", error=str(exc), fallback="polling")
                    fall_back = True
                    break
                if changes:  # before the scan they trigger: a vouch holds for that scan only
                    self._vouch_renamed((kinds[kind], os.path.basename(p)) for kind, p in changes)
                now = time.monotonic()
                scan_due = bool(changes) or now >= next_rescan or now >= next_check or not watching
                watching = True
                if now >= next_rescan:
                    next_rescan = now + self.rescan_interval
        finally:
            with contextlib.suppress(Exception):
                await watcher.aclose()
        if fall_back:
            async for candidate in self._discover_polling(stop_event):
                yield candidate

    async def _discover_polling(self, stop_event: anyio.Event) -> AsyncIterator[Candidate]:
        while not stop_event.is_set():
            for candidate in await anyio.to_thread.run_sync(self.scan):
                if stop_event.is_set():
                    return
                yield candidate
            with anyio.move_on_after(self._next_scan_wait(self.poll_interval)):
                await stop_event.wait()

    # --- claim -----------------------------------------------------------------------------

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
            if not self._try_acquire(staging, 0, token):
                raise OSError(errno.EEXIST, "fresh staging directory already leased")
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise QueueSetupError(
                f"queue folder {self.paths.active} is not writable: {exc.strerror}"
            ) from exc
        _checkpoint("staged")
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
            self._note(candidate.name, f"cannot be claimed: {exc.strerror}")
            return None
        _checkpoint("claimed")
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
            sha = sha256_file(manifest)
        except FileNotFoundError:
            return None  # as above
        except OSError as exc:
            if not self._holds(staging, gen, token):
                return None
            job_id = f"{safe_stem(name)}-x{token[:9]}"
            self._move_to_failed(
                staging, name, job_id, [f"{name}: cannot be read ({exc.strerror})"]
            )
            return None
        job_id = job_id_for(name, sha)
        target = self.paths.active / job_id
        _checkpoint("hashed")
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
        _checkpoint("settled")
        job = ClaimedJob(job_id, target, name, sha, token, gen, resumed)
        try:
            self._assert_holder(job)
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
        if lease is not None and not self._lease_stale(job_dir.name, gen, lease):
            return False  # its holder is finishing it right now
        next_gen = -1 if gen is None else gen
        if not self._try_acquire(job_dir, next_gen + 1, secrets.token_hex(8)):
            return False
        shutil.rmtree(job_dir, ignore_errors=True)
        return True

    # --- leases ----------------------------------------------------------------------------

    def _lease(self, job: str, gen: int, token: str, acquired: datetime, **kw: Any) -> Lease:
        return Lease(
            holder=self.worker_id,
            host=self._host,
            pid=os.getpid(),
            token=token,
            generation=gen,
            job=job,
            acquired_at=acquired,
            heartbeat=datetime.fromtimestamp(self._clock(), UTC),
            **kw,
        )

    def _lease_stale(self, name: str, gen: int | None, lease: Lease) -> bool:
        """Whether a lease may be taken over (design.md §9: clock skew never decides).

        A lease of this host was stamped by this host's clock, so its heartbeat's age is exact.
        A lease of another host is stale only once this worker has seen it unchanged for
        `lease_ttl` by its own monotonic clock, however that host's clock is set.
        """
        if lease.released:
            return True
        if lease.host == self._host:
            return lease_is_stale(lease, self._clock(), self.lease_ttl)
        content = (gen, lease.token, lease.heartbeat)
        return self._watch.unchanged_for(name, content, self._monotonic()) > self.lease_ttl

    def _try_acquire(self, job_dir: Path, gen: int, token: str) -> bool:
        """Create lease generation `gen` exclusively; False if another worker created it first."""
        target = lease_file(job_dir, gen)
        lease = self._lease(job_dir.name, gen, token, _utcnow())
        tmp = temp_name_for(target)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(dumps_json(lease.model_dump(mode="json")))
                fh.flush()
                os.fsync(fh.fileno())
            os.link(tmp, target)
        except FileExistsError:
            return False
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        fsync_dir(job_dir)
        return True

    @staticmethod
    def _holds(job_dir: Path, gen: int, token: str) -> bool:
        try:
            current, lease = read_lease(job_dir)
        except FileNotFoundError:
            return False
        return current == gen and lease is not None and lease.token == token

    def _assert_holder(self, job: ClaimedJob) -> Lease:
        try:
            gen, lease = read_lease(job.dir)
        except FileNotFoundError:
            raise LeaseLost(f"job {job.job_id}: its directory is gone") from None
        if gen != job.generation or lease is None or lease.token != job.token:
            raise LeaseLost(f"job {job.job_id}: lease taken over (generation {gen})")
        return lease

    def renew(self, job: ClaimedJob, *, released: bool = False) -> None:
        """Renew our lease now (blocking). Raises LeaseLost when another worker took the job."""
        current = self._assert_holder(job)
        lease = self._lease(
            job.job_id, job.generation, job.token, current.acquired_at, released=released
        )
        atomic_write_json(job.lease_path, lease.model_dump(mode="json"))

    async def heartbeat(
        self, job: ClaimedJob, interval: float | None = None, guard: LeaseGuard | None = None
    ) -> None:
        """Renew the lease every `lease_ttl / 3` until cancelled; raise LeaseLost when lost.

        Run it in the job's task group and cancel the job when it raises. A renewal that fails
        for an I/O reason is retried; once none has succeeded for `lease_ttl`, others consider
        the lease stale, so this worker must consider the job lost too. With a `guard`, each
        renewal is reported to it, and a sender that no longer trusts the lease wakes it early.
        """
        every = interval if interval is not None else self.lease_ttl / 3
        last_ok = time.monotonic()
        while True:
            if guard is None:
                await anyio.sleep(every)
            else:
                await guard.wait_asked(every)
            started = time.monotonic()
            try:
                await anyio.to_thread.run_sync(self.renew, job)
            except LeaseLost:
                log.warning("queue_lease_lost", job_id=job.job_id)
                raise
            except OSError as exc:
                log.warning("queue_lease_renew_failed", job_id=job.job_id, error=exc.strerror)
                if time.monotonic() - last_ok > self.lease_ttl:
                    raise LeaseLost(f"job {job.job_id}: lease not renewed in time") from exc
                continue
            last_ok = time.monotonic()
            if guard is not None:
                guard.renewed(started)

    def release(self, job: ClaimedJob) -> None:
        """Give the job up on a clean shutdown so another worker may take it over at once.

        Stop the job's heartbeat first: a later renewal would un-release it.
        """
        with contextlib.suppress(LeaseLost, OSError):
            self.renew(job, released=True)
            log.info("queue_released", job_id=job.job_id)

    # --- recovery --------------------------------------------------------------------------

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
            if not self._lease_stale(job_dir.name, gen, lease):
                return None
            previous = {"holder": lease.holder, "age": round(lease_age(lease, now), 3)}
        else:
            # No readable lease: judge by the file times (a lease-less staging dir is being set
            # up right now, or its creator died before writing the lease).
            probe = job_dir if gen is None else lease_file(job_dir, gen)
            if now - probe.stat().st_mtime <= self.lease_ttl:
                return None
            previous = {"holder": None, "age": None}
        token = secrets.token_hex(8)
        new_gen = 0 if gen is None else gen + 1
        if not self._try_acquire(job_dir, new_gen, token):
            return None
        log.info("queue_lease_taken_over", entry=job_dir.name, lease_gen=new_gen, **previous)
        self._tidy(job_dir, new_gen)
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
            sha = sha256_file(job_dir / MANIFEST_DIR / name)
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
        self._assert_holder(job)
        return job

    @staticmethod
    def _tidy(job_dir: Path, keep_gen: int) -> None:
        """Remove superseded lease generations and temp files left by a crashed writer."""
        for name in os.listdir(job_dir):
            match = _LEASE_RE.match(name)
            old_lease = match is not None and int(match.group(1)) < keep_gen
            if old_lease or (name.startswith(".") and name.endswith(".tmp")):
                with contextlib.suppress(OSError):
                    os.unlink(job_dir / name)

    # --- finish ----------------------------------------------------------------------------

    async def finish(self, job: ClaimedJob) -> Path:
        """Move a job whose enrollments all ended to done/; returns the manifest's new path."""
        return await anyio.to_thread.run_sync(self.finish_sync, job)

    def finish_sync(self, job: ClaimedJob) -> Path:
        self._assert_holder(job)
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
        self._assert_holder(job)
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
            "failed_at": _utcnow(),
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
