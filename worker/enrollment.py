"""The async driver of one enrollment: performs the actions that `enrollment_rules` decides.

Owns: turning an action into API calls and journal records, and the calls' results and errors
into observations. It never decides what comes next (that is `enrollment_rules.decide`) and
never retries by itself beyond what the rules allow: transient failures come back as
`Transient` observations, counted and bounded by the rules.

Journal discipline (design.md §5): an intent is on disk before an audio create or a compute
is sent, and a created audio's handle is on disk before the step that depends on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import structlog

from worker import collisions
from worker.api import errors
from worker.api.client import ApiClient
from worker.audiofile import AudioUnreadable
from worker.enrollment_actions import (
    Action,
    AddAudio,
    AwaitAudio,
    AwaitCompute,
    Compute,
    CreateAudio,
    CreateVoiceprint,
    Done,
    EnsureIdentity,
    FindAudio,
    GetVoiceprint,
    ListVoiceprintAudios,
    UploadFile,
    Validate,
    action_key,
)
from worker.enrollment_audio import AudioWork, explained
from worker.enrollment_observe import (
    Added,
    AudioOutcomeUnknown,
    ComputeAccepted,
    Computed,
    CreditsExhausted,
    IdentityReady,
    Observation,
    Polled,
    SawAudio,
    SawVoiceprint,
    SawVoiceprintAudios,
    Transient,
    Validated,
    advance,
    exhausted_attempts,
)
from worker.enrollment_reads import Reads, seen
from worker.enrollment_rules import decide
from worker.enrollment_task import EnrollmentTask, audio_alias, outcome_record
from worker.enrollment_view import (
    ABSENT,
    AudioSeen,
    Limits,
    Outcome,
    Step,
    View,
    VoiceprintSeen,
)
from worker.journal import Computed as ComputedRecord
from worker.journal import (
    ComputeIntent,
    EnrollmentMemory,
    EnrollmentOutcome,
    ErrorInfo,
    Journal,
)
from worker.locks import PROCESS_AUDIO_LOCKS, AudioLocks

__all__ = ["EnrollmentDriver", "EnrollmentTask", "FatalApiError", "audio_alias", "outcome_record"]

log = structlog.get_logger(__name__)


class FatalApiError(Exception):
    """The worker cannot go on at all (the API refuses our credentials)."""


class _Failed(Exception):
    """A permanent failure of the current step, with what the report should say."""

    def __init__(self, step: Step, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.step, self.reason, self.status = step, reason, status


INLINE_MAX_BYTES = 8 * 1024 * 1024  # the default of ENROLLER_INLINE_UPLOAD_MAX_BYTES


class EnrollmentDriver:
    """Runs one enrollment to an outcome against the API, journaling as it goes.

    `limits` bound it (stalls, processing timeout); `audio_locks` is the process's lock per
    file, so that voiceprints sharing a file get one audio; `clock` is monotonic seconds.
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
        inline_max_bytes: int = INLINE_MAX_BYTES,
    ) -> None:
        self.task = task
        self.client = client
        self.journal = journal
        self.memory = memory or EnrollmentMemory()
        self.limits = limits or Limits()
        self.clock = clock
        self.reads = Reads(task, client)
        self.calls = 0
        self._last_transient = ""
        self.audio = AudioWork(
            task, client, journal, self.memory, self.reads, audio_locks, inline_max_bytes
        )
        self._compute_sent = self.memory.compute_sent  # a compute of ours may have taken effect
        self._compute_recorded = self.memory.computed

    async def run(self) -> EnrollmentOutcome:
        view = View(
            plan=self.task.plan,
            limits=self.limits,
            computed_here=self.memory.computed or self.memory.compute_sent,
        )
        try:
            while True:
                if (tried := exhausted_attempts(view)) is not None:
                    step = tried.split(":", 1)[0]
                    reason = f"gave up after retries: {self._last_transient}"
                    done = Done(Outcome.FAILED, Step(step), reason)
                    break
                action = decide(view)
                if isinstance(action, Done):
                    done = action
                    break
                await self.audio.hold_for(action)
                try:
                    observations = await self._perform(action)
                except _Failed as failed:
                    done = Done(Outcome.FAILED, failed.step, failed.reason, failed.status)
                    break
                view = advance(view, action_key(action), observations)
        finally:
            await self.audio.release()
        return self._outcome(done, view)

    # --- actions ---------------------------------------------------------------------------

    async def _perform(self, action: Action) -> list[Observation]:
        self.calls += 1
        try:
            return await self._dispatch(action)
        except errors.CreditsExhausted as exc:
            return [CreditsExhausted(action.step, f"credits exhausted: {exc.message}")]
        except errors.Unauthorized as exc:
            raise FatalApiError(str(exc)) from None
        except (errors.ServerError, errors.RateLimited, errors.NotSent) as exc:
            return [self._transient(action.step, str(exc))]
        except errors.OutcomeUnknown as exc:
            if isinstance(action, CreateAudio):
                self._last_transient = str(exc)
                return [AudioOutcomeUnknown(action.sha)]
            return [self._transient(action.step, str(exc))]
        except errors.HttpStatusError as exc:
            raise _Failed(action.step, exc.message, exc.status) from None
        except errors.ApiError as exc:
            raise _Failed(action.step, str(exc)) from None
        except AudioUnreadable as exc:  # vanished, swapped or changed since preflight
            name = self.audio.file_name(action.sha) if isinstance(action, UploadFile) else "file"
            raise _Failed(action.step, f"{name}: {exc}") from None

    def _transient(self, step: Step, reason: str) -> Transient:
        self._last_transient = reason
        log.info("enrollment_step_transient", step=step.value, reason=reason)
        return Transient(step, reason)

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
            case FindAudio(sha=sha):
                return await self.audio.find(sha)
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
            try:
                await self.client.create_identity(t.owner, t.space, t.identity, alias=t.alias)
            except errors.Conflict:
                return IdentityReady()  # a duplicate handle: the only 409 of this create
            return IdentityReady(fresh=True)
        try:
            await self.client.get_identity(t.owner, t.space, t.identity)
        except errors.NotFound:
            raise _Failed(
                Step.IDENTITY,
                f"identity {t.identity!r} does not exist and createIdentity is false",
                404,
            ) from None
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
            unexplained = isinstance(voiceprint, VoiceprintSeen) and voiceprint.state != "computed"
            if sha not in held and unexplained:
                audio = await self.reads.audio(handle)
            return explained(
                Step.ADD_AUDIO, collisions.after_add(sha, t.identity, held, voiceprint, audio)
            )
        except errors.NotFound:
            if await self.reads.audio(handle) != ABSENT:
                raise  # the voiceprint or identity is what is missing: fail as it says
            found = await self.audio.lost(sha, handle)
            if found is None:
                raise
            return found
        except errors.Unprocessable as exc:
            name = self.audio.file_name(sha)
            raise _Failed(Step.ADD_AUDIO, f"{name}: {exc.message}", 422) from None
        self.reads.last_voiceprint = vp
        return [Added(sha, handle, seen(vp))]

    async def _compute(self) -> list[Observation]:
        t = self.task
        await self.journal.append(ComputeIntent(key=t.key))
        sent_before = self._compute_sent
        self._compute_sent = True
        try:
            vp = await self.client.compute_voiceprint(t.owner, t.space, t.identity, t.voiceprint)
        except errors.Conflict as exc:
            ours = exc.after_unknown_outcome or sent_before
            name, observations = collisions.after_compute(await self.reads.voiceprint(), ours=ours)
            if any(isinstance(o, ComputeAccepted) and o.ours for o in observations):
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
