"""The async driver of one enrollment: performs the actions that `rules.decide` returns.

Owns: turning an action into API calls and journal records, and a call's answer into the
observations it carries; it loops `decide` → perform → `advance` until `decide` returns `Done`.
It never decides what an answer means or what comes next: an error's meaning is
`answers.meaning`, a 409's (after the reads it calls for) `collisions.py`, an add's 404 (after
reading the audio) and everything next `rules.decide`. It never retries by itself: a request
is retried only inside the API client (`max_retries`); a step that failed comes back to the
rules as a `Transient` observation, and they decide to try it again or give up.

Journal discipline (design.md §5): an intent is on disk before an audio create or a compute
is sent, and a created audio's handle is on disk before the step that depends on it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio
import structlog

from worker.api import errors
from worker.api.client import ApiClient
from worker.audio.files import AudioUnreadable
from worker.base.errors import WorkerMustStop
from worker.config.settings import setting_default
from worker.enrollment import collisions
from worker.enrollment.actions import (
    Action,
    AddAudio,
    AwaitAudio,
    AwaitCompute,
    Compute,
    CreateAudio,
    CreateVoiceprint,
    EnsureIdentity,
    FindAudio,
    GetVoiceprint,
    ListVoiceprintAudios,
    Replace,
    UploadFile,
    Validate,
    action_key,
)
from worker.enrollment.answers import Fatal, meaning
from worker.enrollment.audio_steps import AudioWork, explained
from worker.enrollment.locks import PROCESS_AUDIO_LOCKS, AudioLocks
from worker.enrollment.migrate import migrate
from worker.enrollment.observe import (
    Added,
    AudioLost,
    ComputeAccepted,
    Computed,
    IdentityReady,
    Observation,
    Polled,
    SawAudio,
    SawVoiceprint,
    SawVoiceprintAudios,
    Transient,
    Validated,
    advance,
)
from worker.enrollment.reads import Reads, seen
from worker.enrollment.rules import decide
from worker.enrollment.swap import Swap, VoiceprintEdits, edits_of
from worker.enrollment.task import EnrollmentTask
from worker.enrollment.view import ABSENT, AddNotFound, AudioSeen, Done, Limits, View
from worker.enrollment.waiting import ApiAskedToWait
from worker.journal.records import Computed as ComputedRecord
from worker.journal.records import (
    ComputeIntent,
    EnrollmentMemory,
    EnrollmentOutcome,
    ErrorInfo,
    Outcome,
    Step,
)
from worker.journal.writer import Journal

log = structlog.get_logger(__name__)


class FatalApiError(WorkerMustStop):
    """The worker cannot go on at all (the API refuses our credentials).

    The one bridge from the API's tree (`worker.api.errors`) to the worker's: the driver raises
    it where `answers.meaning` calls an API answer `Fatal`; the job's boundary checkpoints the
    job and the service stops.
    """


class EnrollmentDriver:
    """Runs one enrollment to an outcome against the API, journaling as it goes.

    `limits` bound it (stalls, processing timeout, transient failures per step: the rules
    apply them); `audio_locks` is the process's lock per file, so that voiceprints sharing a
    file get one audio; `clock` is monotonic seconds.
    """

    def __init__(
        self,
        task: EnrollmentTask,
        client: ApiClient,
        journal: Journal,
        memory: EnrollmentMemory | None = None,
        *,
        limits: Limits | None = None,
        audio_locks: AudioLocks = PROCESS_AUDIO_LOCKS,
        clock: Callable[[], float] = time.monotonic,
        inline_max_bytes: int = setting_default("inline_upload_max_bytes"),
        memory_of: Callable[[str], EnrollmentMemory] | None = None,
        edits: VoiceprintEdits | None = None,
        may_swap: bool = True,
    ) -> None:
        self.task = task
        self.client = client
        self.journal = journal
        self.memory = memory or EnrollmentMemory()
        self.limits = limits or Limits()
        self.clock = clock
        self._audio_locks = audio_locks
        self._inline_max_bytes = inline_max_bytes
        # What the journal proves of other keys: a swap builds under the next handle's key.
        self.memory_of = memory_of or (lambda key: EnrollmentMemory())
        self.edits = edits or edits_of(client)
        self.may_swap = may_swap
        self.reads = Reads(task, client)
        self.audio = AudioWork(
            task, client, journal, self.memory, self.reads, audio_locks, inline_max_bytes
        )
        self._compute_sent = self.memory.compute_sent  # a compute of ours may have taken effect
        self._compute_recorded = self.memory.computed

    async def run(self) -> EnrollmentOutcome:
        if self.may_swap and self.memory.swap is not None:  # a swap under way: finish it
            return await self._beyond_rules(self._swap().resume(self.memory.swap))
        if self.may_swap and self.task.migrate_from is not None:
            return await self._beyond_rules(migrate(self.task, self.reads, self._swap()))
        view = View(
            plan=self.task.plan,
            limits=self.limits,
            computed_here=self.memory.computed or self.memory.compute_sent,
            identity_ready=not self.may_swap,  # a swap's build: the old voiceprint's identity
            # A migration's build: the audios are the old voiceprint's, on the server already.
            audios={
                key: AudioSeen(handle, "available", received=True)
                for key, handle in self.task.server_audios
            },
        )
        try:
            while True:
                action = decide(view)
                if isinstance(action, Done):
                    done = action
                    break
                if isinstance(action, Replace) and self.may_swap:
                    await self.audio.release()
                    return await self._beyond_rules(self._swap().start(action))
                await self.audio.hold_for(action)
                observations = await self._perform(action)
                view = advance(view, action_key(action), observations)
        finally:
            await self.audio.release()
        return self._outcome(done, view)

    async def _beyond_rules(self, work: Awaitable[EnrollmentOutcome]) -> EnrollmentOutcome:
        """A swap or a migration, which call the API outside the rules: the answers that stop
        the worker or the job mean what they mean in `_heard`; any other error that escapes
        (a migration's first reads) fails this enrollment alone, never its job."""
        try:
            return await work
        except errors.ApiPaused as exc:
            raise ApiAskedToWait(str(exc)) from None
        except errors.Unauthorized as exc:
            raise FatalApiError(str(exc)) from None
        except errors.ApiError as exc:
            status = getattr(exc, "status", None)  # HTTP errors have one; a reset has none
            error = ErrorInfo(step=Step.SWAP.value, status=status, reason=str(exc))
            return self.task.outcome(Outcome.FAILED, error=error)

    def _swap(self) -> Swap:
        return Swap(self.task, self.client, self.journal, self._build, self.edits)

    async def _build(self, task: EnrollmentTask) -> EnrollmentOutcome:
        """The swap's new voiceprint (or its audios), by the ordinary upsert of `task`."""
        driver = EnrollmentDriver(
            task,
            self.client,
            self.journal,
            self.memory_of(task.key),
            limits=self.limits,
            audio_locks=self._audio_locks,
            clock=self.clock,
            inline_max_bytes=self._inline_max_bytes,
            memory_of=self.memory_of,
            edits=self.edits,
            may_swap=False,
        )
        return await driver.run()

    # --- actions ---------------------------------------------------------------------------

    async def _perform(self, action: Action) -> list[Observation]:
        """Perform the action; an error becomes what `answers.meaning` says it means."""
        try:
            return await self._dispatch(action)
        except (errors.ApiError, AudioUnreadable) as exc:
            return self._heard(action, exc)

    def _heard(self, action: Action, exc: errors.ApiError | AudioUnreadable) -> list[Observation]:
        if isinstance(exc, errors.ApiPaused):
            raise ApiAskedToWait(str(exc)) from None  # the job checkpoints; nothing failed
        sha = getattr(action, "sha", None)
        name = self.audio.file_name(sha) if sha is not None else ""
        said = meaning(action, exc, identity=self.task.identity, file_name=name)
        if isinstance(said, Fatal):
            raise FatalApiError(said.reason) from None
        # In a declared outage (worker.api.outage) the API's state is told once, not per step.
        say = log.debug if self.client.outage.active else log.info
        for obs in said:
            if isinstance(obs, Transient):
                say("enrollment_step_transient", step=obs.step.value, reason=obs.reason)
        return said

    async def _dispatch(self, action: Action) -> list[Observation]:
        t = self.task
        c = self.client
        match action:
            case GetVoiceprint():
                return [SawVoiceprint(await self.reads.voiceprint())]
            case Validate():
                vp = await self.reads.voiceprint()
                return [Validated(vp) if vp != ABSENT else SawVoiceprint(ABSENT)]
            case ListVoiceprintAudios():
                return [SawVoiceprintAudios(await self.reads.held())]
            case EnsureIdentity(create=create):
                return [await self._ensure_identity(create)]
            case FindAudio(sha=sha, lost=None):
                return await self.audio.find(sha)
            case FindAudio(lost=str(lost)):
                return await self._find_lost(action, lost)
            case CreateAudio(sha=sha):
                return await self.audio.create(sha)
            case UploadFile(sha=sha, handle=handle):
                return await self.audio.upload(sha, handle)
            case AwaitAudio(sha=sha, handle=handle, delay=delay):
                await anyio.sleep(delay)
                audio = await self.reads.audio(handle)
                polled = Polled(f"audio:{sha}", self.clock())
                if audio == ABSENT:
                    return [SawAudio(sha, ABSENT), polled]
                return [self.audio.learn(sha, audio), polled]
            case CreateVoiceprint():
                try:
                    vp = await c.create_voiceprint(
                        t.owner,
                        t.space,
                        t.identity,
                        t.model,
                        min_audios=t.min_audios,
                        handle=t.voiceprint,
                        alias=t.alias,
                    )
                except errors.Conflict:
                    return explained(
                        Step.CREATE_VOICEPRINT,
                        collisions.after_create_voiceprint(await self.reads.voiceprint()),
                    )
                self.reads.last_voiceprint = vp
                return [SawVoiceprint(seen(vp)), SawVoiceprintAudios(())]
            case AddAudio(sha=sha, handle=handle):
                return await self._add_audio(sha, handle)
            case Compute():
                return await self._compute()
            case AwaitCompute(delay=delay):
                await anyio.sleep(delay)
                vp = await self.reads.voiceprint()
                polled = Polled("compute", self.clock())
                if vp == ABSENT:
                    return [SawVoiceprint(ABSENT), polled]
                return [Validated(vp, by="settled read"), polled]
        raise AssertionError(f"no driver for {action!r}")  # pragma: no cover

    async def _ensure_identity(self, create: bool) -> Observation:
        t = self.task
        if create:
            await self.client.create_identity(t.owner, t.space, t.identity, alias=t.alias)
            return IdentityReady(fresh=True)
        await self.client.get_identity(t.owner, t.space, t.identity)
        return IdentityReady()

    async def _add_audio(self, sha: str, handle: str) -> list[Observation]:
        t = self.task
        try:
            vp = await self.client.add_audio_to_voiceprint(
                t.owner, t.space, t.identity, t.voiceprint, handle
            )
        except errors.Conflict:
            # Already added? Computed meanwhile? Not available yet? Another identity's? Read.
            held = await self.reads.held()
            voiceprint = await self.reads.voiceprint()
            audio = None
            if collisions.add_needs_audio_read(sha, held, voiceprint):
                audio = await self.reads.audio(handle)
            return explained(
                Step.ADD_AUDIO, collisions.after_add(sha, t.identity, held, voiceprint, audio)
            )
        except errors.NotFound as exc:
            gone = await self.reads.audio(handle) == ABSENT  # which is missing: the rules say
            return [AddNotFound(sha, handle, gone, exc.message, exc.status)]
        self.reads.last_voiceprint = vp
        return [Added(sha, handle, seen(vp))]

    async def _find_lost(self, action: FindAudio, handle: str) -> list[Observation]:
        """Forget audio `handle`, which the server lost, then find the file's audio again. The
        loss is observed whatever the find answers; a failure of the find is the add step's."""
        self.audio.forget(action.sha, handle)
        try:
            found = await self.audio.find(action.sha)
        except (errors.ApiError, AudioUnreadable) as exc:
            return [AudioLost(action.sha), *self._heard(action, exc)]
        return [AudioLost(action.sha), *found]

    async def _compute(self) -> list[Observation]:
        t = self.task
        await self.journal.append(ComputeIntent(key=t.key))
        sent_before = self._compute_sent
        self._compute_sent = True
        try:
            vp = await self.client.compute_voiceprint(
                t.owner, t.space, t.identity, t.voiceprint, **collisions.compute_expects(t.plan)
            )
        except errors.OutcomeUnknown as exc:  # read, then decide: never resent blind
            explained_ = collisions.after_unknown_compute(await self.reads.voiceprint(), str(exc))
            if collisions.ours_took_effect(explained_[1]):
                await self._record_compute()
            return explained(Step.COMPUTE, explained_)
        except errors.Conflict as exc:
            ours = collisions.compute_may_be_ours(
                after_unknown_outcome=exc.after_unknown_outcome, sent_before=sent_before
            )
            name, observations = collisions.after_compute(await self.reads.voiceprint(), ours=ours)
            if collisions.ours_took_effect(observations):
                await self._record_compute()
            return explained(Step.COMPUTE, (name, observations))
        self.reads.last_voiceprint = vp
        await self._record_compute()
        if vp.state.value == "computed":
            return [Computed(seen(vp))]
        # Asynchronous: accepted (and billed), still processing; read until it is computed.
        return [ComputeAccepted(ours=True), SawVoiceprint(seen(vp))]

    async def _record_compute(self) -> None:
        """Journal a compute of ours that took effect once: the job's credits count them."""
        if not self._compute_recorded:
            vp_id = (
                self.reads.last_voiceprint.id if self.reads.last_voiceprint is not None else None
            )
            await self.journal.append(ComputedRecord(key=self.task.key, voiceprint_id=vp_id))
            self._compute_recorded = True

    # --- the result ------------------------------------------------------------------------

    def _outcome(self, done: Done, view: View) -> EnrollmentOutcome:
        vp = self.reads.last_voiceprint
        error = (
            ErrorInfo(step=done.step.value, status=done.status, reason=done.reason)
            if done.outcome is not Outcome.ENROLLED
            and done.outcome is not Outcome.UNCHANGED
            and done.step is not None
            else None
        )
        audios = [a.handle for a in view.audios.values() if isinstance(a, AudioSeen)]
        return self.task.outcome(
            done.outcome,
            voiceprint_id=vp.id if vp else None,
            state=vp.state.value if vp else None,
            audios=audios,
            total_duration_s=vp.total_duration if vp else None,
            total_voice_s=vp.total_voice_duration if vp else None,
            attempts=1 + sum(view.attempts.values()),
            error=error,
            validated_by=view.validated_by if done.outcome is Outcome.ENROLLED else None,
        )
