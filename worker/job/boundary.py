"""The fault boundary of one job (design.md §7): nothing a job does can stop the worker.

Owns: what an exception that escapes a job means, read from the shape of the worker's error tree
(`worker/base/errors.py`), never from which module raised it (`fate`). A `JobNoLongerHeld` (a
lost lease) hands the job off untouched; a `WorkerMustStop` (credentials revoked) checkpoints it
and stops the service; a `JobMustCheckpoint` (the disk refused a journal write, the journal
index failed), or a bare `OSError` a full or failing disk answered (a report write),
checkpoints it; anything else — a `JobMustFail`, an `EnrollmentFailed` nobody caught, or an
exception of any other class (a parser bug) — moves the manifest to failed/ with
`<job>.error.json` (exception class, message, phase) and logs the traceback once. It also
keeps the poison-pill counter (`worker.job.starts`) and gives the lease back on every way out,
cancellation included.

It never does a job's work itself (`job.work`) and never raises to the service.
"""

from __future__ import annotations

import dataclasses
import enum
import errno
import functools

import anyio
import anyio.to_thread
import structlog

from worker.api.governor import RequestMeter
from worker.base.crashpoints import crash_point
from worker.base.errors import (
    EnrollerError,
    JobMustCheckpoint,
    JobMustWait,
    JobNoLongerHeld,
    WorkerMustStop,
)
from worker.base.log import REDACTOR
from worker.base.text import safe_text
from worker.job.run import JobContext, JobResult, work
from worker.job.starts import JobError, StartCounter, crashed_too_often, poison_reason
from worker.manifest.models import Problem
from worker.queue.leaseguard import LeaseGuard
from worker.queue.paths import ClaimedJob

log = structlog.get_logger(__name__)


async def run_job(job: ClaimedJob, ctx: JobContext) -> JobResult:
    """Run one claimed job to its report (or to a checkpoint, on shutdown or a lost lease).

    This is the job's fault boundary (design.md §7): whatever escapes the work, of any class,
    ends this job and nothing else. It never raises (cancellation aside), so neither the other
    jobs nor the process can be taken down by one manifest.
    """
    with structlog.contextvars.bound_contextvars(job_id=job.job_id):
        result = JobResult(job_id=job.job_id, manifest=safe_text(job.name))
        counter = StartCounter(job.starts_path)
        release = True  # whether this run still holds a lease to give back at the end
        try:
            release = await _run_guarded(job, ctx, result, counter)
        finally:
            # Also on cancellation (phase two of a shutdown): another worker, or the next
            # start, takes the job at once instead of after `lease_ttl`.
            with anyio.CancelScope(shield=True):
                if release:
                    await anyio.to_thread.run_sync(ctx.queue.release, job)
        if ctx.observer is not None:
            ctx.observer.job_ended(result)
        return result


async def _run_guarded(
    job: ClaimedJob, ctx: JobContext, result: JobResult, counter: StartCounter
) -> bool:
    """The job inside its boundary; returns whether its lease must still be released."""
    try:
        record = await anyio.to_thread.run_sync(counter.start, job.journal_path)
        if crashed_too_often(record, ctx.settings.max_job_starts):
            return await _fail_job(job, ctx, result, poison_reason(record), record.last_error)
        crash_point("job.started", job.name)
        await _run_with_heartbeat(job, ctx, result, counter)
    except Exception as exc:  # the fault boundary: an exception of any class ends this job
        return await _stopped(job, ctx, result, counter, _leaf(exc))
    if result.finished or result.failed_manifest:
        return False  # its directory is gone with the manifest: no lease is left to give back
    if result.interrupted:
        await anyio.to_thread.run_sync(counter.clean_stop)
        done = sum(result.counts.values())
        log.warning(
            "job_interrupted",
            message=f"{job.job_id} stopped at {done} of {result.total} enrollments; it resumes "
            "from its journal at the next start",
            **result.counts,
        )
    return True


class Fate(enum.Enum):
    """What an exception that ended a job does to it (`fate`)."""

    HAND_OFF = "hand_off"  # not ours any more: touch nothing, release nothing
    STOP_WORKER = "stop_worker"  # checkpoint it, then the service stops
    CHECKPOINT = "checkpoint"  # keep the journal, release the lease; a later start resumes
    WAIT = "wait"  # the same, as a clean stop: the API asked to wait (not a fault)
    FAIL = "fail"  # manifest to failed/ with error.json


# What a full or failing disk answers: the job is not at fault, so it is kept, not failed.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})


def fate(exc: Exception) -> Fate:
    """The job's fate by the kind of `exc` in the worker's error tree (worker/base/errors.py).

    The one exception class outside the tree read here is `OSError`: a write of the job's own
    files (a report) the disk refused checkpoints it, as a refused journal write does.
    """
    if isinstance(exc, JobNoLongerHeld):
        return Fate.HAND_OFF
    if isinstance(exc, JobMustWait):
        return Fate.WAIT
    if isinstance(exc, WorkerMustStop):
        return Fate.STOP_WORKER
    if isinstance(exc, JobMustCheckpoint):
        return Fate.CHECKPOINT
    if isinstance(exc, OSError) and not isinstance(exc, EnrollerError):
        return Fate.CHECKPOINT if exc.errno in DISK_ERRNOS else Fate.FAIL
    return Fate.FAIL  # JobMustFail, an EnrollmentFailed nobody caught, or any other class


async def _stopped(
    job: ClaimedJob, ctx: JobContext, result: JobResult, counter: StartCounter, exc: Exception
) -> bool:
    """What an exception that ended the job means for it; returns whether to release."""
    result.interrupted = True
    match fate(exc):
        case Fate.HAND_OFF:
            log.warning("job_lease_lost", reason=str(exc))  # another worker has it: hands off
            return False
        case Fate.STOP_WORKER:
            result.fatal = str(exc)  # e.g. credentials revoked: the service stops everything
            log.error("job_stopped_fatal", reason=str(exc))
            return True
        case Fate.WAIT:
            log.warning("job_checkpointed_api_wait", reason=str(exc))
            await anyio.to_thread.run_sync(counter.clean_stop)
            return True
        case Fate.CHECKPOINT:
            # The disk refused the journal, its index or a report: checkpoint (the journal
            # heals on the next start, which writes the reports again). It counts as a start
            # that did not end, so a disk that stays full fails the job after `max_job_starts`.
            error = _job_error(exc, result.phase)
            log.error("job_checkpointed_disk_refused", phase=result.phase, error=error.message)
            await anyio.to_thread.run_sync(counter.error, error)
            return True
    result.interrupted = False
    error = _job_error(exc, result.phase)
    log.error("job_crashed", phase=result.phase, exc_info=exc)  # the one traceback, in the log
    await anyio.to_thread.run_sync(counter.error, error)
    reason = f"the job stopped in phase {error.phase!r}: {error.exception}: {error.message}"
    return await _fail_job(job, ctx, result, reason, error)


async def _fail_job(
    job: ClaimedJob, ctx: JobContext, result: JobResult, reason: str, error: JobError | None
) -> bool:
    """Move the manifest to failed/ with its error file; returns whether to release instead."""
    result.failed_manifest = True
    result.problems = [reason]
    problem = Problem(file=safe_text(job.name), reason=reason)
    try:
        await ctx.queue.fail(
            job,
            [problem.model_dump(mode="json")],
            error.model_dump(mode="json") if error is not None else None,
        )
    except JobNoLongerHeld:  # the lease was lost meanwhile: the job is another's
        return False
    except OSError as exc:  # e.g. the disk is full: the counter fails it on a later start
        log.error("job_not_moved_to_failed", error=exc.strerror or str(exc))
        return True
    log.warning("job_failed", reason=reason)
    return False


async def _run_with_heartbeat(
    job: ClaimedJob, ctx: JobContext, result: JobResult, counter: StartCounter
) -> None:
    """`_run` while the lease is renewed; a lost lease cancels the work (`LeaseLost` escapes).

    No request leaves once the lease may have lapsed (a frozen process, thawed): see `leaseguard`.
    The job works with the process's client behind its guard (`ApiClient.gated`), so every
    request of the job, whichever task sends it, asks the guard before it leaves.
    """
    guard = LeaseGuard(ctx.queue.lease_ttl)
    job_client = ctx.client.gated(guard.confirmed, RequestMeter())  # counts this job's requests
    job_ctx = dataclasses.replace(ctx, client=job_client)
    async with anyio.create_task_group() as tg:
        tg.start_soon(functools.partial(ctx.queue.heartbeat, job, guard=guard))
        await (ctx.seams.work or work)(job, job_ctx, result, counter)
        tg.cancel_scope.cancel()


def _leaf(exc: BaseException) -> Exception:
    """The first real exception inside (nested) exception groups from task groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc if isinstance(exc, Exception) else RuntimeError(repr(exc))


def _job_error(exc: BaseException, phase: str) -> JobError:
    message = REDACTOR.scrub(str(exc)) or repr(exc)
    return JobError(exception=type(exc).__name__, message=message[:2000], phase=phase)
