"""One job: a claimed manifest driven to a report.

Owns: the fan-out of a job's enrollments under the shared limits (manifest and preflight:
`worker.job.input`), the usage-record check afterwards, and the three report files; the lease's
heartbeat runs beside it, in the fault boundary (`worker.job.boundary`). Enrollments stream
from the manifest through a few preflight threads into a fixed set of runner tasks over a
zero-buffer channel: a 100 000-enrollment manifest never becomes 100 000 tasks or models, and
finished results live in the journal on disk, not in memory (only counts): resume, the usage
check and the reports ask the journal's index (`worker.journal.index`), never a set of keys.

It never decides an enrollment's next step (`worker.enrollment.rules`) and never touches queue
files other than through `worker.queue`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import anyio
import anyio.abc
import anyio.to_thread
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from worker.api.client import ApiClient
from worker.audio.derive import WORK_DIR_NAME
from worker.base.crashpoints import crash_point
from worker.base.fsutil import atomic_write_json
from worker.base.text import safe_text
from worker.config.settings import Settings
from worker.enrollment.driver import EnrollmentDriver
from worker.enrollment.locks import EnrollmentLocks
from worker.enrollment.view import Limits
from worker.job.input import JobInput, PlannedEnrollment, PlanStream, load_job_input
from worker.job.migration import list_identities, needs_identities
from worker.job.progress import JobProgress
from worker.job.report_files import run_report_paths, write_reports
from worker.job.seams import JobSeams
from worker.job.starts import StartCounter
from worker.job.usage_check import UsageFollower, check_usage
from worker.journal.index import JournalIndex
from worker.journal.records import (
    EnrollmentOutcome,
    ErrorInfo,
    JobFinished,
    JobStarted,
    JournalState,
    Outcome,
    Step,
)
from worker.journal.writer import Journal
from worker.manifest.models import ManifestDefaults, Problem
from worker.objects.store import S3Store
from worker.queue.jobqueue import JobQueue
from worker.queue.paths import ClaimedJob

log = structlog.get_logger(__name__)

PROGRESS_EVERY_S = 2.0
PREFLIGHT_THREADS = 4  # per job, ~0.7 ms a small file each: far ahead of any rate limit


class JobObserver(Protocol):
    """Who watches jobs from outside (metrics, the progress bar); must not block or raise.

    The job's own `JobProgress` object is handed over, not copied, so every view reads one state.
    """

    def job_started(self, job_id: str, name: str, progress: JobProgress) -> None: ...

    def enrollment_finished(self, outcome: str) -> None: ...

    def job_ended(self, result: JobResult) -> None: ...


@dataclass
class JobContext:
    """What every job of a process shares: settings, the one client, the queue, the limits."""

    settings: Settings
    client: ApiClient
    queue: JobQueue
    slots: anyio.CapacityLimiter  # enrollments in progress across all jobs
    stop: anyio.Event  # shutdown phase one: start no new enrollments
    voiceprint_locks: EnrollmentLocks  # one per process: per job, it would lock nothing
    observer: JobObserver | None = None  # metrics and progress display (worker/ops/operations.py)
    seams: JobSeams = field(default_factory=JobSeams)  # disk writes and timings tests replace
    objects: S3Store | None = None  # the process's S3 client for s3:// audios (worker.objects)


@dataclass
class JobResult:
    job_id: str
    manifest: str
    counts: dict[str, int] = field(default_factory=dict)
    failed_manifest: bool = False
    interrupted: bool = False
    total: int = 0  # enrollments of the manifest, once parsed
    fatal: str | None = None
    report: Path | None = None
    problems: list[str] = field(default_factory=list)
    finished: bool = False  # reports written and the manifest moved to done/
    phase: str = "start"  # how far it got: start, parse, resume, enroll, usage, report, finish


async def work(job: ClaimedJob, ctx: JobContext, result: JobResult, counter: StartCounter) -> None:
    """The job's work, from the manifest to done/; `worker.job.boundary` runs it inside the fault
    boundary, so anything that escapes from here ends this job and nothing else."""

    async def phase(name: str) -> None:
        result.phase = name
        await anyio.to_thread.run_sync(counter.phase, name)

    await phase("parse")
    defaults = ManifestDefaults.from_settings(ctx.settings)
    loaded = await anyio.to_thread.run_sync(load_job_input, job.manifest_path, defaults)
    if loaded.file_problems:
        await _reject_manifest(job, ctx, result, loaded.file_problems)
        return
    if needs_identities(loaded):  # a migration of "all": the space's identities, listed once
        await list_identities(job, ctx.client, loaded)
    await phase("resume")
    # Done keys, computes and derived files of earlier runs: asked of the index, never held.
    index = await anyio.to_thread.run_sync(JournalIndex, job.journal_path)
    try:
        await _run(job, ctx, result, loaded, index, phase)
    finally:
        # Ended here (done/ or failed/): nobody resumes from it. Otherwise kept for the resume
        # (blocking, but local and quick, and it must happen even when cancelled).
        if result.finished or result.failed_manifest:
            index.remove()
        else:
            index.close()


async def _run(
    job: ClaimedJob,
    ctx: JobContext,
    result: JobResult,
    loaded: JobInput,
    index: JournalIndex,
    phase: Callable[[str], Awaitable[None]],
) -> None:
    state = JournalState()
    await anyio.to_thread.run_sync(index.load, state)  # replays the journal, indexes its tail
    if state.finished:  # crashed after its reports and `JobFinished`: only the move is left
        await _finish_reported(job, ctx, result, state, index, phase)
        return
    work_dir = job.dir / WORK_DIR_NAME  # derived uploads; removed with the job's folder
    loaded.object_max_bytes = ctx.settings.s3_max_object_bytes
    await anyio.to_thread.run_sync(loaded.use_work_dir, work_dir, index, ctx.objects)
    resumed = await anyio.to_thread.run_sync(index.count)
    # Even when no enrollment can run, the job runs: each bad one ends `failed` at preflight
    # with no request, and the report, failures CSV and retry manifest say what to fix.
    plan = loaded.planned(skip=index if resumed else frozenset())
    total = loaded.total
    progress = JobProgress(total=total)
    resumed = state.started is not None  # an earlier start was cut: the report says so
    async with Journal(job.journal_path, write=ctx.seams.journal_write) as journal:
        progress.written = journal.kinds
        started = await _begin(job, ctx, journal, state, index, progress)
        await phase("enroll")
        runners = min(ctx.settings.max_enrollments, max(total, 1))
        follower = UsageFollower(ctx.client, index, started.at, every=ctx.seams.usage_follow_every)
        async with anyio.create_task_group() as following:
            following.start_soon(follower.follow, name=f"usage pages of {job.job_id}")
            await _fan_out(job, ctx, journal, state, progress, plan, runners)
            follower.finish()  # lets a page in flight come in: it is not read twice
        await _write_progress(job, progress)

        if progress.done < total:
            result.interrupted = True  # shutdown: resume from the journal on the next start
            result.counts, result.total = dict(progress.counts), total
            return

        await phase("usage")
        usage = await check_usage(ctx.client, index, started.at, follower)
        await phase("report")
        writer, meter = ctx.seams.report_writer, ctx.client.meter
        counts, result.report = await write_reports(
            job, ctx.queue, loaded, started.at, usage, index, writer, meter, interrupted=resumed
        )
        result.counts = counts
        crash_point("job.reported", job.name)
        await journal.append(JobFinished())
        crash_point("job.finished_record", job.name)
    await _finish(job, ctx, result, phase)


async def _begin(
    job: ClaimedJob,
    ctx: JobContext,
    journal: Journal,
    state: JournalState,
    index: JournalIndex,
    progress: JobProgress,
) -> JobStarted:
    """The job's start: journaled once (a resumed job keeps its first start, whose time bounds
    the usage check), the outcomes of an earlier run counted, the observer told."""
    started, total = state.started, progress.total
    if started is None:
        started = JobStarted(
            job_id=job.job_id, manifest=job.name, manifest_sha256=job.sha256, enrollments=total
        )
        await journal.append(started)
    progress.counts.update(await anyio.to_thread.run_sync(index.counts))
    progress.done_at_start = progress.done
    if state.started is not None:  # a stop or a crash cut an earlier run: say where it resumes
        sent = sum(len(m.audios) for m in state.memory.values())
        log.info(
            "job_resuming",
            message=f"resuming {job.job_id} at {progress.done} of {total} enrollments "
            f"({len(state.memory)} under way, {sent} audios already sent)",
        )
    log.info("job_started", manifest=safe_text(job.name), enrollments=total, resumed=progress.done)
    if ctx.observer is not None:
        ctx.observer.job_started(job.job_id, job.name, progress)
    return started


async def _finish_reported(
    job: ClaimedJob,
    ctx: JobContext,
    result: JobResult,
    state: JournalState,
    index: JournalIndex,
    phase: Callable[[str], Awaitable[None]],
) -> None:
    """A run that crashed after its reports and `JobFinished`: name the report, then move."""
    result.counts = dict(await anyio.to_thread.run_sync(index.counts))
    result.report = await anyio.to_thread.run_sync(
        lambda: (
            run_report_paths(ctx.queue, job.job_id, state.started.at).report
            if state.started is not None
            else ctx.queue.paths.report_paths(job.job_id).report
        )
    )
    await _finish(job, ctx, result, phase)


async def _fan_out(
    job: ClaimedJob,
    ctx: JobContext,
    journal: Journal,
    state: JournalState,
    progress: JobProgress,
    plan: PlanStream,
    runners: int,
) -> None:
    """The feeders' stream of preflighted enrollments into `runners` tasks, until all ran
    or a shutdown stopped the sending (the rest resumes from the journal)."""
    send, receive = anyio.create_memory_object_stream[PlannedEnrollment](0)
    async with anyio.create_task_group() as reporting:
        reporting.start_soon(_report_progress, job, progress)
        async with anyio.create_task_group() as running:
            for _ in range(runners):
                running.start_soon(_runner, receive.clone(), ctx, journal, state, progress)
            receive.close()
            async with send:
                threads = anyio.CapacityLimiter(PREFLIGHT_THREADS)
                # First, in manifest order, up to the first enrollment that can run: it goes
                # out first, whatever the threads finish first after it. Nothing is held.
                await _feed(job, plan, send.clone(), ctx.stop, threads, head=True)
                async with anyio.create_task_group() as feeders:
                    for _ in range(PREFLIGHT_THREADS):
                        feeders.start_soon(_feed, job, plan, send.clone(), ctx.stop, threads)
        reporting.cancel_scope.cancel()


async def _finish(
    job: ClaimedJob, ctx: JobContext, result: JobResult, phase: Callable[[str], Awaitable[None]]
) -> None:
    await phase("finish")
    await ctx.queue.finish(job)
    result.finished = True
    crash_point("job.done", job.name)
    log.info("job_finished", report=str(result.report), **result.counts)


async def _reject_manifest(
    job: ClaimedJob, ctx: JobContext, result: JobResult, problems: list[Problem]
) -> None:
    """A file that cannot be read as a manifest at all goes to failed/, every problem beside
    it (a manifest whose every enrollment is bad runs instead, to its report)."""
    result.failed_manifest = True
    result.problems = [str(p) for p in problems]
    for problem in result.problems:
        log.warning("manifest_rejected", problem=problem)
    await ctx.queue.fail(job, [p.model_dump(mode="json") for p in problems])


async def _feed(
    job: ClaimedJob,
    plan: PlanStream,
    send: MemoryObjectSendStream[PlannedEnrollment],
    stop: anyio.Event,
    threads: anyio.CapacityLimiter,
    *,
    head: bool = False,
) -> None:
    """Preflight the next enrollment in a thread, hand it to a runner; until the end or stop
    (`head`: or until one that can run was handed over)."""
    async with send:
        while not stop.is_set():
            planned = await anyio.to_thread.run_sync(plan.next_preflighted, limiter=threads)
            if planned is None or stop.is_set():
                return  # at stop: not started, so not journaled; it resumes next start
            await send.send(planned)
            crash_point("job.enrolling", job.name)
            if head and planned.task is not None:
                return


async def _runner(
    receive: MemoryObjectReceiveStream[PlannedEnrollment],
    ctx: JobContext,
    journal: Journal,
    state: JournalState,
    progress: JobProgress,
) -> None:
    async with receive:
        async for planned in receive:
            if ctx.stop.is_set():
                continue  # shutdown: not started, so not journaled; it resumes next start
            async with ctx.slots:
                outcome = await _enroll(planned, ctx, journal, state)
            await journal.append(outcome)
            if planned.task is not None and (planned.task.derived or planned.task.scratch):
                await anyio.to_thread.run_sync(planned.task.discard_derived)
            progress.counts[outcome.outcome] += 1
            if ctx.observer is not None:
                ctx.observer.enrollment_finished(outcome.outcome)
            log.info(
                "enrollment_finished",
                identity=planned.identity,
                outcome=outcome.outcome,
                reason=outcome.error.reason if outcome.error else None,
            )


async def _enroll(
    planned: PlannedEnrollment,
    ctx: JobContext,
    journal: Journal,
    state: JournalState,
) -> EnrollmentOutcome:
    # A row rejected before its identity was known is named by its place in the manifest.
    who = {"identity": planned.identity} if planned.identity else {"place": planned.source}
    with structlog.contextvars.bound_contextvars(**who):
        task = planned.task
        if task is None:
            for problem in planned.problems:
                log.warning("enrollment_rejected", problem=str(problem))
            return planned.failed(Step.PREFLIGHT, planned.problem_text())
        if ctx.client.governor.credits_exhausted:
            return task.outcome(
                Outcome.SKIPPED,
                error=ErrorInfo(step=Step.COMPUTE.value, reason="credits exhausted: not started"),
            )
        limits = Limits.from_settings(ctx.settings)
        async with ctx.voiceprint_locks.hold(task.key):
            driver = EnrollmentDriver(
                task,
                ctx.client,
                journal,
                state.of(task.key),
                limits=limits,
                inline_max_bytes=ctx.settings.inline_upload_max_bytes,
                memory_of=state.of,
            )
            return await driver.run()


async def _report_progress(job: ClaimedJob, progress: JobProgress) -> None:
    while True:
        await anyio.sleep(PROGRESS_EVERY_S)
        await _write_progress(job, progress)
        log.info("job_progress", done=progress.done, total=progress.total, **progress.steps())


async def _write_progress(job: ClaimedJob, progress: JobProgress) -> None:
    """`progress.json` for `enroller status`; losing one update is harmless."""
    try:
        await anyio.to_thread.run_sync(atomic_write_json, job.progress_path, progress.as_json())
    except OSError as exc:
        log.warning("progress_not_written", error=exc.strerror)
