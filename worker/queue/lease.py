"""The lease protocol: who holds a job of active/, renewed, released and taken over safely.

Owns: every read and write of `lease.<gen>.json`, the staleness judgement and the heartbeat.
It never moves a job between folders (claim.py does, after asking `try_acquire` or
`assert_holder` here), and never decides what a lost lease means for the job (boundary.py).

Generations make takeover race-free: a lease file is only ever *created* by
`link(temp, lease.<gen>.json)`, which fails with `EEXIST` when another worker created that
generation first (an O_EXCL create that also publishes the full content at once; it works on
NFS). The holder renews `lease.<gen>.json` by atomic replace, and before every renewal checks
that no higher generation exists and that the file still carries its token; otherwise it has
lost the job (`LeaseLost`) and must stop. A worker that finds the highest lease stale (not
renewed within `lease_ttl`, or `released`) creates `lease.<gen+1>.json`; of two workers racing,
one gets `EEXIST`. The one window left is a holder that stalls longer than `lease_ttl`
(SIGSTOP, a frozen VM) and then writes before its next renewal check: the lease guard
(worker/queue/leaseguard.py) keeps its requests back, and steps are idempotent (design.md §4).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import structlog
from pydantic import ValidationError

from worker.base.errors import JobNoLongerHeld
from worker.base.fsutil import atomic_write_json, dumps_json, fsync_dir, temp_name_for
from worker.queue.leaseguard import LeaseGuard
from worker.queue.paths import LEASE_RE, ClaimedJob, lease_file
from worker.queue.rules import Lease, LeaseWatch, lease_is_stale

log = structlog.get_logger(__name__)

# The pause before a failed renewal is tried again while senders wait on it.
RENEW_RETRY_S = 0.25


class LeaseLost(JobNoLongerHeld):
    """This worker no longer holds the job: another worker took it over. Stop working on it."""


def lease_generations(job_dir: Path) -> list[int]:
    """The lease generations present in a job directory, lowest first."""
    gens = []
    for name in os.listdir(job_dir):
        match = LEASE_RE.match(name)
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


def utcnow() -> datetime:
    return datetime.now(UTC)


class LeaseHolder:
    """This worker's side of the protocol: its leases written, renewed, judged and released.

    `host` names whose clock stamped a lease (see `stale`); `clock` is the wall clock the
    leases are stamped with, `monotonic` the clock another host's lease is judged by;
    `write_lease` writes a renewal (`atomic_write_json`).
    """

    def __init__(
        self,
        worker_id: str,
        lease_ttl: float,
        *,
        host: str,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        write_lease: Callable[[Path, Any], None] = atomic_write_json,
    ) -> None:
        self.worker_id = worker_id
        self._write_lease = write_lease  # a renewal's write (a test's failing disk)
        self.lease_ttl = lease_ttl
        self.host = host
        self._clock = clock
        self._monotonic = monotonic
        self._watch = LeaseWatch()  # leases of other hosts, judged by our own clock

    def _lease(self, job: str, gen: int, token: str, acquired: datetime, **kw: Any) -> Lease:
        return Lease(
            holder=self.worker_id,
            host=self.host,
            pid=os.getpid(),
            token=token,
            generation=gen,
            job=job,
            acquired_at=acquired,
            heartbeat=datetime.fromtimestamp(self._clock(), UTC),
            **kw,
        )

    def stale(self, name: str, gen: int | None, lease: Lease) -> bool:
        """Whether a lease may be taken over (design.md §9: clock skew never decides).

        A lease of this host was stamped by this host's clock, so its heartbeat's age is exact.
        A lease of another host is stale only once this worker has seen it unchanged for
        `lease_ttl` by its own monotonic clock, however that host's clock is set.
        """
        if lease.released:
            return True
        if lease.host == self.host:
            return lease_is_stale(lease, self._clock(), self.lease_ttl)
        content = (gen, lease.token, lease.heartbeat)
        return self._watch.unchanged_for(name, content, self._monotonic()) > self.lease_ttl

    def try_acquire(self, job_dir: Path, gen: int, token: str) -> bool:
        """Create lease generation `gen` exclusively; False if another worker created it first."""
        target = lease_file(job_dir, gen)
        lease = self._lease(job_dir.name, gen, token, utcnow())
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
    def holds(job_dir: Path, gen: int, token: str) -> bool:
        try:
            current, lease = read_lease(job_dir)
        except FileNotFoundError:
            return False
        return current == gen and lease is not None and lease.token == token

    def assert_holder(self, job: ClaimedJob) -> Lease:
        try:
            gen, lease = read_lease(job.dir)
        except FileNotFoundError:
            raise LeaseLost(f"job {job.job_id}: its directory is gone") from None
        if gen != job.generation or lease is None or lease.token != job.token:
            raise LeaseLost(f"job {job.job_id}: lease taken over (generation {gen})")
        return lease

    def renew(self, job: ClaimedJob, *, released: bool = False) -> None:
        """Renew our lease now (blocking). Raises LeaseLost when another worker took the job."""
        current = self.assert_holder(job)
        lease = self._lease(
            job.job_id, job.generation, job.token, current.acquired_at, released=released
        )
        self._write_lease(job.lease_path, lease.model_dump(mode="json"))

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
                if guard is not None:
                    # Waiting senders keep asking: pause, or a failing disk is retried in a
                    # tight loop until the TTL runs out.
                    await anyio.sleep(min(every, RENEW_RETRY_S))
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

    @staticmethod
    def tidy(job_dir: Path, keep_gen: int) -> None:
        """Remove superseded lease generations and temp files left by a crashed writer."""
        for name in os.listdir(job_dir):
            match = LEASE_RE.match(name)
            old_lease = match is not None and int(match.group(1)) < keep_gen
            if old_lease or (name.startswith(".") and name.endswith(".tmp")):
                with contextlib.suppress(OSError):
                    os.unlink(job_dir / name)
