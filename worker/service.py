"""The worker loop: discover, claim, run, recover; and the two-phase shutdown.

Owns: which jobs run when. Discovery and claims come from `worker.queue`, a job's work from
`worker.job` (through its fault boundary, `worker.job.boundary.run_job`). It never parses
manifests or calls the API itself beyond the start-up check.

Shutdown, phase one (SIGTERM/SIGINT or `stop` set): no more claims, jobs stop starting new
enrollments, in-flight steps may finish for `shutdown_grace` seconds. Phase two: whatever still
runs is cancelled; the journal already holds every effect and intent, so the next start resumes.
Unfinished jobs release their lease so another worker (or the next start) takes them at once.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import structlog

from worker.api import errors
from worker.api.client import ApiClient
from worker.base.errors import WorkerMustStop
from worker.base.exitcodes import EXIT_FAILURES, EXIT_FATAL, EXIT_OK, EXIT_TEMPFAIL
from worker.config.described import api_url_version_hint
from worker.config.settings import Settings
from worker.enrollment.locks import EnrollmentLocks, FileLocks
from worker.job.boundary import run_job
from worker.job.objects import store_from_settings
from worker.job.report import exit_code_for
from worker.job.run import JobContext, JobObserver, JobResult
from worker.job.seams import JobSeams
from worker.queue.discover import Candidate
from worker.queue.jobqueue import JobQueue
from worker.queue.paths import ClaimedJob, QueueSetupError

if TYPE_CHECKING:
    from worker.fleet.session import Fleet

log = structlog.get_logger(__name__)


class FatalError(WorkerMustStop):
    """The worker cannot run at all: configuration, credentials, queue setup."""


@dataclass
class RunTotals:
    """What `--once` reports at the end, summed over the jobs it ran."""

    jobs: int = 0
    failed_manifests: int = 0
    interrupted: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    results: list[JobResult] = field(default_factory=list)
    fatal: str | None = None

    def add(self, result: JobResult) -> None:
        self.jobs += 1
        self.results.append(result)
        self.failed_manifests += int(result.failed_manifest)
        self.interrupted += int(result.interrupted)
        for outcome, n in result.counts.items():
            self.counts[outcome] = self.counts.get(outcome, 0) + n
        if result.fatal and not self.fatal:
            self.fatal = result.fatal

    @property
    def exit_code(self) -> int:
        if self.fatal:
            return EXIT_FATAL
        if self.failed_manifests:
            return EXIT_FAILURES
        return exit_code_for(self.counts)


async def check_access(client: ApiClient) -> str:
    """Fail fast on a bad key or URL instead of failing every enrollment one by one.

    Returns the caller's handle: the account a fleet's shared budget belongs to.
    """
    try:
        return (await client.get_user()).handle
    except errors.Unauthorized:
        raise FatalError("the API refused the credentials (401): check ENROLLER_API_KEY") from None
    except errors.NotFound as exc:
        hint = api_url_version_hint(client.base_url)
        raise FatalError(f"the API at the configured URL has no GET /user: {exc}{hint}") from None
    except errors.ApiError as exc:
        raise FatalError(f"the API at the configured URL cannot be used: {exc}") from None


class Service:
    """Runs jobs from one queue directory through one API client."""

    def __init__(
        self,
        settings: Settings,
        client: ApiClient,
        queue: JobQueue | None = None,
        *,
        observer: JobObserver | None = None,
        stop: anyio.Event | None = None,
        seams: JobSeams | None = None,
    ):
        """`observer` is told of every job and enrollment (metrics, progress: see ops.py);
        `stop` may be shared with whoever watches the run, as the operations do; `seams` are
        the jobs' disk writes and timings (`JobSeams`: the defaults, unless a test says)."""
        self.settings = settings
        self.seams = seams if seams is not None else JobSeams()
        self.objects = store_from_settings(settings)  # s3:// audios; connects only when used
        self.client = client
        self.queue = queue or JobQueue(settings)
        self.stop = stop or anyio.Event()
        self.totals = RunTotals()
        self._slots = anyio.CapacityLimiter(settings.max_enrollments)
        # One per process (per job it would lock nothing); files order the processes.
        self._voiceprint_locks = EnrollmentLocks(FileLocks.for_queue(settings.queue_dir))
        self._running: set[str] = set()
        self._idle = anyio.Event()
        self._job_ended = anyio.Event()
        self._once = False
        self.signalled = False
        self._feeding_done = False
        self.observer = observer
        self.user_handle = ""  # who the credentials are, from the start-up check
        self.fleet: Fleet | None = None  # set while running in fleet mode (ENROLLER_REDIS_URL)
        self.paused_until: datetime | None = None  # --once: the API asked to wait until then

    def _context(self) -> JobContext:
        return JobContext(
            settings=self.settings,
            client=self.client,
            queue=self.queue,
            slots=self._slots,
            stop=self.stop,
            voiceprint_locks=self._voiceprint_locks,
            observer=self.observer,
            seams=self.seams,
            objects=self.objects,
        )

    async def setup(self) -> None:
        try:
            await anyio.to_thread.run_sync(self.queue.setup)
        except QueueSetupError as exc:
            raise FatalError(str(exc)) from None
        self.user_handle = await check_access(self.client)

    async def _run_job(self, job: ClaimedJob) -> None:
        try:
            result = await run_job(job, self._context())
            self.totals.add(result)
            if result.fatal:
                self.stop.set()  # e.g. credentials revoked: nothing else can work either
        finally:
            self._running.discard(job.job_id)
            self._job_ended.set()
            self._job_ended = anyio.Event()
            if not self._running:
                self._idle.set()
                if self._once and self._feeding_done:
                    self.stop.set()  # --once: the queue is drained

    def _start(self, tg: anyio.abc.TaskGroup, job: ClaimedJob) -> None:
        if job.job_id in self._running:
            return
        self._idle = anyio.Event() if self._idle.is_set() else self._idle
        self._running.add(job.job_id)  # now, not when the task starts: claims count it at once
        tg.start_soon(self._run_job, job, name=f"job {job.job_id}")

    async def _job_slot(self) -> bool:
        """Wait until fewer than `max_jobs` jobs run; False once stopping.

        Claiming only with a free slot leaves the other files in inbox/, where another worker
        may take them, and bounds the tasks of this one.
        """
        while len(self._running) >= self.settings.max_jobs:
            if self.stop.is_set():
                return False
            with anyio.move_on_after(0.5):  # also notices `stop` within half a second
                await self._job_ended.wait()
        return not self.stop.is_set()

    async def run(self, *, once: bool) -> int:
        """Run until the queue is drained (`once`) or until `stop` is set. Returns the exit code."""
        if once:  # a long wait the API asks for stops the run, resumably (exit 75)
            self.client.pause.stops_requests = True
            self.client.pause.listen(self._asked_to_wait)
        try:
            await self.setup()
        except FatalError as exc:
            if self.paused_until is not None:  # asked to wait at the first request: not fatal
                return self._paused_exit()
            log.error("worker_cannot_start", reason=str(exc))
            self.totals.fatal = str(exc)
            return EXIT_FATAL
        log.info("worker_started", worker_id=self.settings.worker_id, once=once)
        self._once = once
        try:
            async with self._joined_fleet():
                await self._run_jobs(once=once)
        finally:
            await anyio.to_thread.run_sync(self.objects.close)
        interrupted = [r.job_id for r in self.totals.results if r.interrupted]
        if interrupted:  # each was told when it stopped (job_interrupted); one line for all
            log.warning(
                "worker_stopped_with_jobs_to_resume",
                jobs=interrupted,
                note="they resume from their journals at the next start (or on another worker)",
            )
        log.info("worker_stopped", jobs=self.totals.jobs, **self.totals.counts)
        if self.paused_until is not None and not self.totals.fatal:
            return self._paused_exit()
        return self.totals.exit_code

    def _paused_exit(self) -> int:
        """`--once` stopped for a wait the API asked for: say until when; exit 75."""
        until = self.paused_until.isoformat(timespec="seconds") if self.paused_until else "?"
        log.warning("worker_paused_by_api", until=until, exit_code=EXIT_TEMPFAIL)
        return EXIT_TEMPFAIL  # jobs checkpointed in active/: run again after `until`

    def _asked_to_wait(self, until: datetime) -> None:
        """`--once`: the API asked for a wait above ENROLLER_MAX_RETRY_AFTER; stop now, the
        jobs checkpoint (requests raise `ApiPaused` unsent) and the run exits 75."""
        self.paused_until = until
        self.stop.set()

    @contextlib.asynccontextmanager
    async def _joined_fleet(self) -> AsyncIterator[None]:
        """The fleet (shared budget, heartbeat) around the run, when Redis is configured."""
        if not self.settings.redis_url:
            yield
            return
        from worker.fleet.session import joined_fleet  # lazy: a lone worker never loads Redis

        running = self._running
        async with joined_fleet(
            self.settings, self.client.governor, self.user_handle, lambda: len(running)
        ) as fleet:
            self.fleet = fleet
            own = self._voiceprint_locks.cross
            if fleet is not None and own is not None:
                self._voiceprint_locks.cross = fleet.locks(own)  # Redis around the file locks
            try:
                yield
            finally:
                self.fleet = None
                self._voiceprint_locks.cross = own

    async def _run_jobs(self, *, once: bool) -> None:
        async with anyio.create_task_group() as jobs_tg:
            async with anyio.create_task_group() as feed_tg:
                if once:
                    feed_tg.start_soon(self._feed_once, jobs_tg)
                else:
                    feed_tg.start_soon(self._feed_forever, jobs_tg)
                    feed_tg.start_soon(self._recover_forever, jobs_tg)
                    await self.stop.wait()
                    feed_tg.cancel_scope.cancel()
            if once:
                self._feeding_done = True
                if not self._running:
                    self.stop.set()
                await self.stop.wait()  # set by the last job, or by a signal
            # Phase one: no more claims. Jobs notice `stop` and start no new enrollments.
            if self._running:
                with anyio.move_on_after(self.settings.shutdown_grace):
                    await self._idle.wait()
                # Phase two: cancel what is left; the journal makes it resumable.
                if self._running:
                    log.warning("worker_grace_expired", jobs=sorted(self._running))
                    jobs_tg.cancel_scope.cancel()

    async def _feed_once(self, jobs_tg: anyio.abc.TaskGroup) -> None:
        """Claim the stale active jobs and every inbox file until the inbox has nothing left."""
        for job in await self.queue.recover_stale():
            self._start(jobs_tg, job)
        while not self.stop.is_set():
            for candidate in await anyio.to_thread.run_sync(self.queue.scan):
                if not await self._job_slot():
                    return
                job = await self._claim(candidate)
                if job is not None:
                    self._start(jobs_tg, job)
            wait = self.queue.pending_wait()
            if wait is None:
                return  # nothing left in the inbox that could become ready
            with anyio.move_on_after(max(wait, 0.05)):
                await self.stop.wait()

    async def _feed_forever(self, jobs_tg: anyio.abc.TaskGroup) -> None:
        async for candidate in self.queue.discover(self.stop):
            if not await self._job_slot():
                return
            job = await self._claim(candidate)
            if job is not None:
                self._start(jobs_tg, job)

    async def _claim(self, candidate: Candidate) -> ClaimedJob | None:
        """Claim `candidate`; a queue that turned unusable (`WorkerMustStop`: a folder no
        longer writable, a volume mounted apart) stops the worker as its setup would, with
        the running jobs' grace, instead of tearing the feeders down mid-claim."""
        try:
            return await self.queue.claim(candidate)
        except WorkerMustStop as exc:
            log.error("worker_must_stop", reason=str(exc))
            self.totals.fatal = self.totals.fatal or str(exc)
            self.stop.set()
            return None

    async def _recover_forever(self, jobs_tg: anyio.abc.TaskGroup) -> None:
        every = max(0.5, self.settings.lease_ttl / 2)
        while not self.stop.is_set():
            # Taking over a stale lease already holds the job: it starts even without a free
            # slot, or nobody would run it until its lease went stale again.
            for job in await self.queue.recover_stale():
                self._start(jobs_tg, job)
            with anyio.move_on_after(every):
                await self.stop.wait()


async def _watch_signals(service: Service, scope: anyio.CancelScope) -> None:
    """First SIGTERM/SIGINT: phase one (graceful). A second one: cancel at once."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if not service.stop.is_set():
                service.signalled = True
                log.info("worker_stopping", signal=signal.Signals(signum).name)
                service.stop.set()
            else:
                log.warning("worker_stopping_now", signal=signal.Signals(signum).name)
                scope.cancel()
                return


async def run_worker(settings: Settings, *, once: bool) -> int:
    """`enroller run`: the process-level wiring of client, queue and service, with signals."""
    try:
        client = ApiClient.from_settings(settings)
    except ValueError as exc:
        log.error("worker_cannot_start", reason=str(exc))
        return EXIT_FATAL
    from worker.ops.operations import operations  # lazy: metrics and rich load only for `run`

    stop = anyio.Event()
    async with client, operations(settings, client, stop.is_set) as observer:
        service = Service(settings, client, observer=observer, stop=stop)
        # A second SIGTERM cancels the run before it returns a code: that is a stop on request.
        code = EXIT_OK
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, service, tg.cancel_scope)
            code = await service.run(once=once)
            tg.cancel_scope.cancel()
    if service.signalled and code != EXIT_FATAL:
        return EXIT_OK  # stopped on request; the next start resumes
    return code
