"""The enrollment state machine, as pure transitions (design.md §4).

Owns: what to do next for one enrollment, given what is known about it. `decide(view)` returns
the next action; `observe(view, observation)` folds the result of that action back into the
view. Nothing here performs I/O or knows about HTTP: the async driver in `enrollment.py` does the
calls and turns their results (or errors) into observations. That split keeps every branch of
the upsert testable with plain values.

Invariants the rules guarantee:
- a voiceprint computed earlier is never touched: same model and same audios → `unchanged`,
  anything else → `conflict`;
- nothing is uploaded before the voiceprint was read (an unchanged enrollment costs no upload);
- an audio whose create had an unknown outcome is looked up again (by its sha256 alias) before
  any new create;
- compute only once every listed audio has been added and the server says `computable`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal

VOICE_NEEDED_S = 4.5
CREDITS_REASON = "credits exhausted: compute paused"
MAX_ATTEMPTS_PER_STEP = 4


class Outcome(StrEnum):
    ENROLLED = "enrolled"  # computed by this run and validated
    UNCHANGED = "unchanged"  # already computed earlier with the same model and audios
    FAILED = "failed"  # a step failed permanently; the report says which and why
    CONFLICT = "conflict"  # a computed voiceprint differs from the manifest; left as it is
    SKIPPED = "skipped"  # never finished for a reason outside the enrollment (shutdown, credits)


class Step(StrEnum):
    PREFLIGHT = "preflight"
    VOICEPRINT = "voiceprint"
    IDENTITY = "identity"
    AUDIO = "audio"
    UPLOAD = "upload"
    CREATE_VOICEPRINT = "create_voiceprint"
    ADD_AUDIO = "add_audio"
    COMPUTE = "compute"
    VALIDATE = "validate"


# --- what is known ---------------------------------------------------------------------------

Unknown = Literal["unknown"]
Absent = Literal["absent"]
UNKNOWN: Unknown = "unknown"
ABSENT: Absent = "absent"

AudioState = Literal["avaitingFile", "available", "notAvailable"]


@dataclass(frozen=True)
class AudioSeen:
    """An audio on the server that holds (or will hold) one of our files."""

    handle: str
    state: AudioState


@dataclass(frozen=True)
class VoiceprintSeen:
    """The voiceprint as the server last described it."""

    state: Literal["notComputable", "computable", "computed"]
    model: str
    audio_count: int
    total_voice_s: float | None = None
    id: str | None = None
    min_audios: int | None = None


@dataclass(frozen=True)
class Plan:
    """The enrollment as the manifest asks for it (after preflight)."""

    identity: str
    voiceprint: str
    model: str
    min_audios: int
    create_identity: bool
    shas: tuple[str, ...]  # one per audio file, in manifest order, all distinct


@dataclass(frozen=True)
class View:
    plan: Plan
    voiceprint: VoiceprintSeen | Unknown | Absent = UNKNOWN
    identity_ready: bool = False
    audios: dict[str, AudioSeen | Unknown | Absent] = field(default_factory=dict)
    added: frozenset[str] = frozenset()  # audio handles known to be in the voiceprint
    added_known: bool = False  # whether `added` was read from the server (or built by us)
    foreign_audios: int = 0  # audios in the (uncomputed) voiceprint that the manifest lacks
    computed_audio_shas: frozenset[str] | None = None  # of a voiceprint computed before we came
    computed_here: bool = False  # this run (or its journal) computed the voiceprint
    validated: bool = False
    credits_exhausted: bool = False
    credits_reason: str = ""  # the server's message, with the step that got it
    credits_step: Step = Step.COMPUTE
    attempts: dict[str, int] = field(default_factory=dict)

    def audio(self, sha: str) -> AudioSeen | Unknown | Absent:
        return self.audios.get(sha, UNKNOWN)


# --- what to do ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GetVoiceprint:
    step: Step = Step.VOICEPRINT


@dataclass(frozen=True)
class ListVoiceprintAudios:
    """Read which audios a voiceprint holds (their sha256 aliases, and handles)."""

    step: Step = Step.VOICEPRINT


@dataclass(frozen=True)
class EnsureIdentity:
    create: bool
    step: Step = Step.IDENTITY


@dataclass(frozen=True)
class FindAudio:
    sha: str
    step: Step = Step.AUDIO


@dataclass(frozen=True)
class CreateAudio:
    sha: str
    step: Step = Step.AUDIO


@dataclass(frozen=True)
class UploadFile:
    sha: str
    handle: str
    step: Step = Step.UPLOAD


@dataclass(frozen=True)
class CreateVoiceprint:
    step: Step = Step.CREATE_VOICEPRINT


@dataclass(frozen=True)
class AddAudio:
    sha: str
    handle: str
    step: Step = Step.ADD_AUDIO


@dataclass(frozen=True)
class Compute:
    step: Step = Step.COMPUTE


@dataclass(frozen=True)
class Validate:
    step: Step = Step.VALIDATE


@dataclass(frozen=True)
class Done:
    outcome: Outcome
    step: Step | None = None
    reason: str = ""
    status: int | None = None


Action = (
    GetVoiceprint
    | ListVoiceprintAudios
    | EnsureIdentity
    | FindAudio
    | CreateAudio
    | UploadFile
    | CreateVoiceprint
    | AddAudio
    | Compute
    | Validate
    | Done
)


def decide(view: View) -> Action:
    """The next action for this enrollment; `Done` when it has reached an outcome."""
    plan = view.plan
    vp = view.voiceprint
    if view.credits_exhausted:
        # Whichever call the server refused for credits: asking again would be refused too.
        return Done(Outcome.SKIPPED, view.credits_step, view.credits_reason or CREDITS_REASON)
    if vp == UNKNOWN:
        # Creating the identity first is cheaper for new customers: a 201 proves that neither a
        # voiceprint nor an audio of ours can exist under it, which saves two reads.
        if plan.create_identity and not view.identity_ready:
            return EnsureIdentity(create=True)
        return GetVoiceprint()

    if isinstance(vp, VoiceprintSeen):
        if vp.model != plan.model:
            return Done(
                Outcome.CONFLICT,
                Step.VOICEPRINT,
                f"voiceprint {plan.voiceprint!r} exists with model {vp.model}, "
                f"the manifest asks for {plan.model}; left untouched",
            )
        if vp.state == "computed":
            return _decide_computed(view, vp)
        if vp.min_audios is not None and vp.min_audios != plan.min_audios:
            return Done(
                Outcome.CONFLICT,
                Step.VOICEPRINT,
                f"voiceprint {plan.voiceprint!r} exists with minAudios {vp.min_audios}, "
                f"the manifest asks for {plan.min_audios}; left untouched",
            )

    if not view.identity_ready and vp == ABSENT:
        return EnsureIdentity(create=plan.create_identity)

    for sha in plan.shas:
        seen = view.audio(sha)
        if seen == UNKNOWN:
            return FindAudio(sha)
        if seen == ABSENT:
            return CreateAudio(sha)
        assert isinstance(seen, AudioSeen)
        if seen.state == "avaitingFile":
            return UploadFile(sha, seen.handle)
        if seen.state == "notAvailable":
            return Done(
                Outcome.FAILED,
                Step.UPLOAD,
                f"audio {seen.handle} (sha256 {sha[:12]}…) could not be decoded by the server",
            )

    if vp == ABSENT:
        return CreateVoiceprint()
    assert isinstance(vp, VoiceprintSeen)

    if not view.added_known:
        return ListVoiceprintAudios()
    if view.foreign_audios:
        return Done(
            Outcome.CONFLICT,
            Step.VOICEPRINT,
            f"voiceprint {plan.voiceprint!r} already holds {view.foreign_audios} audio(s) "
            "that the manifest does not list; not computed, left untouched",
        )
    for sha in plan.shas:
        seen = view.audio(sha)
        assert isinstance(seen, AudioSeen)
        if seen.handle not in view.added:
            return AddAudio(sha, seen.handle)

    if vp.state == "notComputable":
        return Done(Outcome.FAILED, Step.COMPUTE, not_computable_reason(plan, vp))
    return Compute()


def _decide_computed(view: View, vp: VoiceprintSeen) -> Action:
    plan = view.plan
    if view.computed_here:
        if not view.validated:
            return Validate()
        if vp.audio_count != len(plan.shas):
            return Done(
                Outcome.FAILED,
                Step.VALIDATE,
                f"computed voiceprint holds {vp.audio_count} audios, expected {len(plan.shas)}",
            )
        return Done(Outcome.ENROLLED)
    if view.computed_audio_shas is None:
        return ListVoiceprintAudios()
    if view.computed_audio_shas == frozenset(plan.shas):
        return Done(Outcome.UNCHANGED)
    return Done(
        Outcome.CONFLICT,
        Step.VOICEPRINT,
        f"voiceprint {plan.voiceprint!r} was computed earlier from other audios "
        f"({len(view.computed_audio_shas)} on the server, {len(plan.shas)} in the manifest); "
        "left untouched",
    )


def not_computable_reason(plan: Plan, vp: VoiceprintSeen) -> str:
    """Why a voiceprint with every audio added still is not computable, in the model's terms."""
    if vp.audio_count < plan.min_audios:
        return f"{vp.audio_count} audios added < minAudios {plan.min_audios}"
    if vp.total_voice_s is not None and vp.total_voice_s < VOICE_NEEDED_S:
        return f"total voice {vp.total_voice_s:.1f} s < {VOICE_NEEDED_S} s"
    return "the server still reports notComputable after every audio was added"


# --- observations ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SawVoiceprint:
    voiceprint: VoiceprintSeen | Absent
    computed_here: bool = False


@dataclass(frozen=True)
class SawVoiceprintAudios:
    """The audios a voiceprint holds: handle → sha256 from the alias (None if not ours)."""

    handles: frozenset[str]
    shas: frozenset[str]


@dataclass(frozen=True)
class IdentityReady:
    """The identity exists; `fresh` when this very call created it (201, not 409)."""

    fresh: bool = False


@dataclass(frozen=True)
class SawAudio:
    sha: str
    audio: AudioSeen | Absent


@dataclass(frozen=True)
class AudioOutcomeUnknown:
    """A create whose result never arrived: look the audio up again before creating anew."""

    sha: str


@dataclass(frozen=True)
class Added:
    sha: str
    handle: str
    voiceprint: VoiceprintSeen | None = None


@dataclass(frozen=True)
class Computed:
    voiceprint: VoiceprintSeen


@dataclass(frozen=True)
class Validated:
    voiceprint: VoiceprintSeen


@dataclass(frozen=True)
class CreditsExhausted:
    """A 429 without Retry-After on `step` (the server's `reason`): the owner cannot pay."""

    step: Step = Step.COMPUTE
    reason: str = ""


@dataclass(frozen=True)
class Transient:
    """A step that may be tried again (counted, bounded by MAX_ATTEMPTS_PER_STEP)."""

    step: Step
    reason: str


Observation = (
    SawVoiceprint
    | SawVoiceprintAudios
    | IdentityReady
    | SawAudio
    | AudioOutcomeUnknown
    | Added
    | Computed
    | Validated
    | CreditsExhausted
    | Transient
)


def observe(view: View, obs: Observation) -> View:
    """Fold one observation into the view."""
    match obs:
        case SawVoiceprint(voiceprint=vp, computed_here=here):
            changes: dict[str, object] = {"voiceprint": vp}
            if isinstance(vp, VoiceprintSeen):
                changes["identity_ready"] = True
            if here:
                changes["computed_here"] = True
            return replace(view, **changes)  # type: ignore[arg-type]
        case SawVoiceprintAudios(handles=handles, shas=shas):
            vp = view.voiceprint
            if isinstance(vp, VoiceprintSeen) and vp.state == "computed" and not view.computed_here:
                return replace(view, computed_audio_shas=shas)
            foreign = len(shas - frozenset(view.plan.shas))
            return replace(view, added=handles, added_known=True, foreign_audios=foreign)
        case IdentityReady(fresh=fresh):
            if fresh:  # nothing can hang under an identity that did not exist a moment ago
                absent: dict[str, AudioSeen | Unknown | Absent] = dict.fromkeys(
                    view.plan.shas, ABSENT
                )
                return replace(view, identity_ready=True, voiceprint=ABSENT, audios=absent)
            return replace(view, identity_ready=True)
        case SawAudio(sha=sha, audio=audio):
            return replace(view, audios={**view.audios, sha: audio})
        case AudioOutcomeUnknown(sha=sha):
            bumped = _bump(view, f"{Step.AUDIO}:{sha}")
            return replace(bumped, audios={**view.audios, sha: UNKNOWN})
        case Added(handle=handle, voiceprint=vp):
            new = replace(view, added=view.added | {handle})
            return replace(new, voiceprint=vp) if vp is not None else new
        case Computed(voiceprint=vp):
            return replace(view, voiceprint=vp, computed_here=True)
        case Validated(voiceprint=vp):
            return replace(view, voiceprint=vp, validated=True)
        case CreditsExhausted(step=step, reason=reason):
            return replace(view, credits_exhausted=True, credits_step=step, credits_reason=reason)
        case Transient(step=step):
            return _bump(view, str(step))
    raise TypeError(f"unknown observation {obs!r}")  # pragma: no cover


def _bump(view: View, key: str) -> View:
    return replace(view, attempts={**view.attempts, key: view.attempts.get(key, 0) + 1})


def exhausted_attempts(view: View) -> str | None:
    """The step key that has been tried too often, if any (guards against loops)."""
    for key, count in view.attempts.items():
        if count >= MAX_ATTEMPTS_PER_STEP:
            return key
    return None
