"""Folding what the server answered back into an enrollment's view, and counting progress.

Owns: the observation types, `observe(view, observation)`, and `advance`, which folds the
observations of one action and charges the action against the enrollment's cap when they made
no progress: when they leave the enrollment in a state it has been in before (same facts, see
`View.facts`). That catches every loop whatever its shape — a 409 re-read that changes nothing,
a transient failure, a cycle of two actions undoing each other — without listing the loops in
advance. Waiting for the server to process something is paced and bounded by time instead.
Transient failures are also counted per step (`View.attempts`). It records what the answers
show, never what to do about it: that is `rules.decide`'s (giving up on a step included).
Pure: no I/O, no clock (the driver passes `now` in `Polled`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from worker.enrollment.view import (
    ABSENT,
    UNKNOWN,
    Absent,
    AddNotFound,
    AudioSeen,
    Done,
    Unknown,
    View,
    VoiceprintSeen,
    Wait,
)
from worker.journal.records import Step


@dataclass(frozen=True)
class SawVoiceprint:
    voiceprint: VoiceprintSeen | Absent
    computed_here: bool = False


@dataclass(frozen=True)
class SawVoiceprintAudios:
    """The sha256 of each audio a voiceprint holds, repeats kept ("?handle": not one of ours)."""

    shas: tuple[str, ...]


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
    """A create whose result never arrived: look the audio up again before creating anew
    (counted per file like a transient failure; `reason` is the error's)."""

    sha: str
    reason: str = ""


@dataclass(frozen=True)
class AudioLost:
    """The driver forgot the audio the server lost for file `sha` (after `AddNotFound`) and
    looked the file's audio up again; what it found (or the find's failure) follows."""

    sha: str


@dataclass(frozen=True)
class Added:
    sha: str
    handle: str
    voiceprint: VoiceprintSeen | None = None


@dataclass(frozen=True)
class Computed:
    """Compute answered with the voiceprint `computed`: ours, and the answer validates it."""

    voiceprint: VoiceprintSeen


@dataclass(frozen=True)
class ComputeAccepted:
    """The server took a compute and still reads `computable`; `ours` if it was our compute."""

    ours: bool = True


@dataclass(frozen=True)
class Validated:
    """A read of the voiceprint after compute: `by` a separate GET, or the settling read."""

    voiceprint: VoiceprintSeen
    by: str = "get"


@dataclass(frozen=True)
class Polled:
    """One read of a resource the server is processing (`audio:<sha>`, `compute`), at `now`."""

    resource: str
    now: float


@dataclass(frozen=True)
class CreditsExhausted:
    """A 429 without Retry-After on `step` (the server's `reason`): the owner cannot pay."""

    step: Step = Step.COMPUTE
    reason: str = ""


@dataclass(frozen=True)
class Transient:
    """A step that may be tried again (counted per step; the rules give up on a step at
    `Limits.max_attempts`)."""

    step: Step
    reason: str


@dataclass(frozen=True)
class Rejected:
    """An answer settled the outcome: a refusal no retry changes (`answers.meaning`: a 422, a
    404 to a get identity, a file changed since preflight …); the rules return it."""

    verdict: Done


Observation = (
    SawVoiceprint
    | SawVoiceprintAudios
    | IdentityReady
    | SawAudio
    | AudioOutcomeUnknown
    | AddNotFound
    | AudioLost
    | Added
    | Computed
    | ComputeAccepted
    | Validated
    | Polled
    | CreditsExhausted
    | Transient
    | Rejected
)


def observe(view: View, obs: Observation) -> View:
    """Fold one observation into the view."""
    match obs:
        case SawVoiceprint(voiceprint=vp, computed_here=here):
            return _saw_voiceprint(view, vp, here)
        case SawVoiceprintAudios(shas=shas):
            return replace(view, held=tuple(sorted(shas)), listed=True)
        case IdentityReady(fresh=fresh):
            if fresh:  # nothing can hang under an identity that did not exist a moment ago
                absent: dict[str, AudioSeen | Unknown | Absent] = dict.fromkeys(
                    view.plan.shas, ABSENT
                )
                return replace(view, identity_ready=True, voiceprint=ABSENT, audios=absent)
            return replace(view, identity_ready=True)
        case SawAudio(sha=sha, audio=audio):
            return replace(view, audios={**view.audios, sha: _keep_received(view, sha, audio)})
        case AudioOutcomeUnknown(sha=sha, reason=reason):
            bumped = _bump(view, f"{Step.AUDIO}:{sha}", reason)
            return replace(bumped, audios={**view.audios, sha: UNKNOWN})
        case AddNotFound():
            return replace(view, add_not_found=obs)
        case AudioLost(sha=sha):  # the audio stays as last seen until the find answers
            return replace(view, add_not_found=None, lost=view.lost | {sha})
        case Added(sha=sha, voiceprint=vp):
            held = tuple(sorted((*view.held, sha))) if view.held is not None else None
            # The add's answer counts the voiceprint's audios: when that is exactly what we
            # hold by our own listing and adds, the set is proven and needs no second listing.
            proven = view.listed and held is not None and vp is not None
            listed = proven and vp is not None and vp.audio_count == len(held or ())
            new = replace(view, held=held, listed=listed)
            return replace(new, voiceprint=vp) if vp is not None else new
        case Computed(voiceprint=vp):
            by_answer = not view.limits.validate_with_get
            return replace(
                view,
                voiceprint=vp,
                computed_here=True,
                compute_accepted=False,
                validated=by_answer,
                validated_by="compute answer" if by_answer else None,
            )
        case ComputeAccepted(ours=ours):
            return replace(view, compute_accepted=True, computed_here=view.computed_here or ours)
        case Validated(voiceprint=vp, by=by):
            new = _saw_voiceprint(view, vp, False)
            validated = view.computed_here and vp.state == "computed"
            if validated and by != "get" and view.limits.validate_with_get:
                validated = False  # the operator wants the separate GET all the same
            return replace(new, validated=validated, validated_by=by if validated else None)
        case Polled(resource=resource, now=now):
            wait = view.waits.get(resource)
            polled = Wait(wait.polls + 1, wait.started, now) if wait else Wait(1, now, now)
            return replace(view, waits={**view.waits, resource: polled})
        case CreditsExhausted(step=step, reason=reason):
            return replace(view, credits_exhausted=True, credits_step=step, credits_reason=reason)
        case Transient(step=step, reason=reason):
            return _bump(view, str(step), reason)
        case Rejected(verdict=verdict):
            return replace(view, verdict=verdict)
    raise TypeError(f"unknown observation {obs!r}")  # pragma: no cover


def advance(view: View, action: tuple[Step, str], observations: list[Observation]) -> View:
    """Fold one action's observations; charge the action to `stalls` if nothing moved.

    `action` names it for the report (`(step, "add_audio h-1")`). A poll of something the
    server is still processing is never a stall: its bound is the processing timeout.
    """
    before = hash(view.facts())
    for obs in observations:
        view = observe(view, obs)
    seen = view.seen | {before}
    if any(isinstance(obs, Polled) for obs in observations):
        return replace(view, seen=seen)
    after = hash(view.facts())
    if after in seen:
        view = replace(view, stalls=(*view.stalls, action))
    return replace(view, seen=seen | {after})


def _saw_voiceprint(view: View, vp: VoiceprintSeen | Absent, here: bool) -> View:
    changes: dict[str, object] = {"voiceprint": vp}
    if isinstance(vp, VoiceprintSeen):
        changes["identity_ready"] = True
        if vp.state == "computed":
            changes["compute_accepted"] = False
            if not (here or view.computed_here):
                # Computed by someone else: what it holds must be read afresh, not assumed.
                changes["held"], changes["listed"] = None, False
    if here:
        changes["computed_here"] = True
    return replace(view, **changes)  # type: ignore[arg-type]


def _keep_received(view: View, sha: str, audio: AudioSeen | Absent) -> AudioSeen | Absent:
    """Once the server had our file, a later read that still says avaitingFile keeps that."""
    before = view.audio(sha)
    if (
        isinstance(audio, AudioSeen)
        and isinstance(before, AudioSeen)
        and before.received
        and before.handle == audio.handle
        and audio.state == "avaitingFile"
        and not audio.received
    ):
        return replace(audio, received=True)
    return audio


def _bump(view: View, key: str, reason: str) -> View:
    attempts = {**view.attempts, key: view.attempts.get(key, 0) + 1}
    return replace(view, attempts=attempts, last_transient=reason)
