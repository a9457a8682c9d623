"""The async driver of one enrollment: performs the actions that `enrollment_rules` decides.

Owns: turning an action into API calls and journal records, and the calls' results and errors
into observations. It never decides what comes next (that is `enrollment_rules.decide`) and
never retries by itself beyond what the rules allow: transient failures come back as
`Transient` observations, counted and bounded by the rules.

Journal discipline (design.md §5): an intent is on disk before an audio create or a compute
is sent, and a created audio's handle is on disk before the step that depends on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import anyio.to_thread
import structlog

from worker.api import errors
from worker.api.client import ApiClient
from worker.api.schemas import Audio, Voiceprint
from worker.audiofile import AudioUnreadable, VerifiedUpload
from worker.derive import DerivedUpload
from worker.enrollment_rules import (
    ABSENT,
    Absent,
    Action,
    AddAudio,
    Added,
    AudioOutcomeUnknown,
    AudioSeen,
    Compute,
    Computed,
    CreateAudio,
    CreateVoiceprint,
    CreditsExhausted,
    Done,
    EnsureIdentity,
    FindAudio,
    GetVoiceprint,
    IdentityReady,
    ListVoiceprintAudios,
    Observation,
    Outcome,
    Plan,
    SawAudio,
    SawVoiceprint,
    SawVoiceprintAudios,
    Step,
    Transient,
    UploadFile,
    Validate,
    Validated,
    View,
    VoiceprintSeen,
    decide,
    exhausted_attempts,
    observe,
)
from worker.journal import (
    AudioCreated,
    AudioIntent,
    AudioUploaded,
    ComputeIntent,
    EnrollmentMemory,
    EnrollmentOutcome,
    ErrorInfo,
    Journal,
)
from worker.journal import Computed as ComputedRecord

log = structlog.get_logger(__name__)

ALIAS_PREFIX = "sha256:"


def audio_alias(sha256: str) -> str:
    """The alias that lets a re-run (or a reconcile) find the audio made from one file."""
    return ALIAS_PREFIX + sha256


@dataclass(frozen=True)
class EnrollmentTask:
    """One enrollment, preflighted: everything the driver needs, nothing it must look up."""

    key: str  # owner/space/identity/voiceprint: unique within a job, the journal's key
    owner: str
    space: str
    identity: str
    voiceprint: str
    model: str
    min_audios: int
    alias: str | None
    create_identity: bool
    files: tuple[VerifiedUpload, ...]  # in manifest order; each re-checks its sha256 on upload
    source: str
    # The files uploaded as derived copies (a channel, a mix, a conversion; worker.derive).
    derived: tuple[DerivedUpload, ...] = ()

    @property
    def plan(self) -> Plan:
        return Plan(
            identity=self.identity,
            voiceprint=self.voiceprint,
            model=self.model,
            min_audios=self.min_audios,
            create_identity=self.create_identity,
            shas=tuple(f.sha256 for f in self.files),
        )

    def outcome(self, outcome: Outcome, **fields: object) -> EnrollmentOutcome:
        derived = [d.info() for d in self.derived]
        return outcome_record(self, outcome, model=self.model, derived=derived, **fields)

    def discard_derived(self) -> None:
        """Delete this enrollment's derived files: it has ended (blocking)."""
        for d in self.derived:
            d.discard()


class EnrollmentRef(Protocol):
    """What names an enrollment in a report row, runnable or not."""

    @property
    def key(self) -> str: ...
    @property
    def identity(self) -> str: ...
    @property
    def voiceprint(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def space(self) -> str: ...
    @property
    def source(self) -> str: ...


def outcome_record(ref: EnrollmentRef, outcome: Outcome, **fields: object) -> EnrollmentOutcome:
    """The journal's (and report's) row for one enrollment's outcome."""
    return EnrollmentOutcome(
        key=ref.key,
        identity=ref.identity,
        voiceprint=ref.voiceprint,
        owner=ref.owner,
        space=ref.space,
        source=ref.source,
        outcome=outcome.value,
        **fields,  # type: ignore[arg-type]
    )


class FatalApiError(Exception):
    """The worker cannot go on at all (the API refuses our credentials)."""


class _Failed(Exception):
    """A permanent failure of the current step, with what the report should say."""

    def __init__(self, step: Step, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.step, self.reason, self.status = step, reason, status


def seen(vp: Voiceprint) -> VoiceprintSeen:
    return VoiceprintSeen(
        state=vp.state.value,  # type: ignore[arg-type]
        model=vp.model,
        audio_count=vp.audios,
        total_voice_s=vp.total_voice_duration,
        id=vp.id,
        min_audios=vp.min_audios,
    )


def _audio_seen(audio: Audio) -> AudioSeen:
    return AudioSeen(audio.handle, audio.state.value)  # type: ignore[arg-type]


class EnrollmentDriver:
    """Runs one enrollment to an outcome against the API, journaling as it goes."""

    def __init__(
        self,
        task: EnrollmentTask,
        client: ApiClient,
        journal: Journal,
        memory: EnrollmentMemory | None = None,
    ) -> None:
        self.task = task
        self.client = client
        self.journal = journal
        self.memory = memory or EnrollmentMemory()
        self.last_voiceprint: Voiceprint | None = None
        self.calls = 0
        self._last_transient = ""
        self._files = {f.sha256: f for f in task.files}
        self._derived = {d.upload.sha256: d for d in task.derived}

    async def run(self) -> EnrollmentOutcome:
        view = View(
            plan=self.task.plan, computed_here=self.memory.computed or self.memory.compute_sent
        )
        while True:
            if (tried := exhausted_attempts(view)) is not None:
                step = tried.split(":", 1)[0]
                done = Done(
                    Outcome.FAILED, Step(step), f"gave up after retries: {self._last_transient}"
                )
                break
            action = decide(view)
            if isinstance(action, Done):
                done = action
                break
            try:
                for obs in await self._perform(action):
                    view = observe(view, obs)
            except _Failed as failed:
                done = Done(Outcome.FAILED, failed.step, failed.reason, failed.status)
                break
        return self._outcome(done, view)

    # --- actions ---------------------------------------------------------------------------

    async def _perform(self, action: Action) -> list[Observation]:
        self.calls += 1
        try:
            return await self._dispatch(action)
        except errors.CreditsExhausted as exc:
            reason = f"credits exhausted: {exc.message}"
            return [CreditsExhausted(action.step, reason)]
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
            name = self._file_name(action.sha) if isinstance(action, UploadFile) else "file"
            raise _Failed(action.step, f"{name}: {exc}") from None

    def _file_name(self, sha: str) -> str:
        """The file as a person knows it: a derived copy by its source and what was done."""
        if (derived := self._derived.get(sha)) is not None:
            return f"{derived.name} ({derived.derivation.describe()})"
        return self._files[sha].path.name

    def _transient(self, step: Step, reason: str) -> Transient:
        self._last_transient = reason
        log.info("enrollment_step_transient", step=step.value, reason=reason)
        return Transient(step, reason)

    async def _dispatch(self, action: Action) -> list[Observation]:
        t = self.task
        c = self.client
        match action:
            case GetVoiceprint() | Validate():
                try:
                    vp = await c.get_voiceprint(t.owner, t.space, t.identity, t.voiceprint)
                except errors.NotFound:
                    return [SawVoiceprint(ABSENT)]
                self.last_voiceprint = vp
                return [
                    Validated(seen(vp)) if isinstance(action, Validate) else SawVoiceprint(seen(vp))
                ]
            case ListVoiceprintAudios():
                handles: set[str] = set()
                shas: set[str] = set()
                async for audio in c.list_voiceprint_audios(
                    t.owner, t.space, t.identity, t.voiceprint
                ):
                    handles.add(audio.handle)
                    if audio.alias and audio.alias.startswith(ALIAS_PREFIX):
                        shas.add(audio.alias.removeprefix(ALIAS_PREFIX))
                    else:
                        shas.add(f"?{audio.handle}")  # not one of ours: never equals a plan
                return [SawVoiceprintAudios(frozenset(handles), frozenset(shas))]
            case EnsureIdentity(create=create):
                if create:
                    try:
                        await c.create_identity(t.owner, t.space, t.identity, alias=t.alias)
                    except errors.Conflict:
                        return [IdentityReady()]  # it exists (maybe from our own earlier try)
                    return [IdentityReady(fresh=True)]
                else:
                    try:
                        await c.get_identity(t.owner, t.space, t.identity)
                    except errors.NotFound:
                        raise _Failed(
                            Step.IDENTITY,
                            f"identity {t.identity!r} does not exist and createIdentity is false",
                            404,
                        ) from None
                return [IdentityReady()]
            case FindAudio(sha=sha):
                return [SawAudio(sha, await self._find_audio(sha))]
            case CreateAudio(sha=sha):
                # A derived file's alias is tied to its source before the server sees it.
                derived = [d.record(t.key) for d in (self._derived.get(sha),) if d is not None]
                await self.journal.append(*derived, AudioIntent(key=t.key, sha256=sha))
                audio = await c.create_audio(
                    t.owner, t.space, alias=audio_alias(sha), identity=t.identity
                )
                self.memory.audios[sha] = audio.handle
                await self.journal.append(AudioCreated(key=t.key, sha256=sha, audio=audio.handle))
                return [SawAudio(sha, _audio_seen(audio))]
            case UploadFile(sha=sha, handle=handle):
                if (derived := self._derived.get(sha)) is not None:
                    await anyio.to_thread.run_sync(derived.ensure)  # made again after a restart
                try:
                    audio = await c.upload_audio_file(t.owner, t.space, handle, self._files[sha])
                except errors.Conflict:
                    audio = await c.get_audio(t.owner, t.space, handle)  # it has its file already
                await self.journal.append(AudioUploaded(key=t.key, sha256=sha, audio=handle))
                if derived is not None:
                    await anyio.to_thread.run_sync(derived.discard)  # confirmed: not needed again
                return [SawAudio(sha, _audio_seen(audio))]
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
                    self.last_voiceprint = vp
                    return [SawVoiceprint(seen(vp)), SawVoiceprintAudios(frozenset(), frozenset())]
                except errors.Conflict:
                    vp = await c.get_voiceprint(t.owner, t.space, t.identity, t.voiceprint)
                    self.last_voiceprint = vp
                    return [SawVoiceprint(seen(vp))]
            case AddAudio(sha=sha, handle=handle):
                try:
                    vp = await c.add_audio_to_voiceprint(
                        t.owner, t.space, t.identity, t.voiceprint, handle
                    )
                except errors.Conflict:
                    # Already added, or the voiceprint was computed meanwhile: read the truth.
                    vp = await c.get_voiceprint(t.owner, t.space, t.identity, t.voiceprint)
                    self.last_voiceprint = vp
                    return [Added(sha, handle), SawVoiceprint(seen(vp))]
                except errors.Unprocessable as exc:
                    name = self._file_name(sha)
                    raise _Failed(Step.ADD_AUDIO, f"{name}: {exc.message}", 422) from None
                self.last_voiceprint = vp
                return [Added(sha, handle, seen(vp))]
            case Compute():
                await self.journal.append(ComputeIntent(key=t.key))
                try:
                    vp = await c.compute_voiceprint(t.owner, t.space, t.identity, t.voiceprint)
                except errors.Conflict:
                    vp = await c.get_voiceprint(t.owner, t.space, t.identity, t.voiceprint)
                    self.last_voiceprint = vp
                    return [SawVoiceprint(seen(vp), computed_here=vp.state.value == "computed")]
                self.last_voiceprint = vp
                await self.journal.append(ComputedRecord(key=t.key, voiceprint_id=vp.id))
                return [Computed(seen(vp))]
        raise AssertionError(f"no driver for {action!r}")  # pragma: no cover

    async def _find_audio(self, sha: str) -> AudioSeen | Absent:
        """The audio already made from this file: by the journal's handle, else by alias."""
        t = self.task
        known = self.memory.audios.get(sha)
        if known is not None:
            try:
                return _audio_seen(await self.client.get_audio(t.owner, t.space, known))
            except errors.NotFound:
                pass
        found = await self.client.find_audios_by_alias(t.owner, t.space, audio_alias(sha))
        ours = [a for a in found if a.identity is None or a.identity.handle == t.identity]
        if not ours:
            return ABSENT
        # Prefer one that already has its file; then the oldest (the first one created).
        ours.sort(key=lambda a: (a.state.value != "available", a.state.value == "notAvailable"))
        self.memory.audios[sha] = ours[0].handle
        return _audio_seen(ours[0])

    # --- the result ------------------------------------------------------------------------

    def _outcome(self, done: Done, view: View) -> EnrollmentOutcome:
        vp = self.last_voiceprint
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
        )
