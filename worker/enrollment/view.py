"""What is known about one enrollment: the values the pure rules decide on.

Owns: outcomes and steps, what the server was last seen to hold (`AudioSeen`,
`VoiceprintSeen`), what the manifest asks for (`Plan`), the bounds of one enrollment (`Limits`)
and the whole `View`. Plain frozen data, no behaviour beyond small queries: `decide` lives in
`enrollment_rules.py`, `observe` and the progress accounting in `enrollment_observe.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from worker.config.settings import setting_default

MAX_ATTEMPTS_PER_STEP = 4
CREDITS_REASON = "credits exhausted: compute paused"


class Outcome(StrEnum):
    ENROLLED = "enrolled"  # computed by this run and validated
    UNCHANGED = "unchanged"  # already computed earlier with the same model and audios
    FAILED = "failed"  # a step failed permanently; the report says which and why
    CONFLICT = "conflict"  # the voiceprint differs from the manifest; left as it is
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


Unknown = Literal["unknown"]
Absent = Literal["absent"]
UNKNOWN: Unknown = "unknown"
ABSENT: Absent = "absent"

AudioState = Literal["avaitingFile", "available", "notAvailable"]


@dataclass(frozen=True)
class AudioSeen:
    """An audio on the server that holds (or will hold) one of our files.

    `received`: the server has its file (our upload was answered, the audio has an
    `uploadedAt`, or an upload 409 said so) although it may still read `avaitingFile` while
    it is processed. `identity`: the identity it is linked to, None when unlinked.
    """

    handle: str
    state: AudioState
    received: bool = False
    identity: str | None = None


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
class Limits:
    """Bounds and policy of one enrollment (settings `max_actions`, `processing_timeout`,
    `validate_with_get`).

    `max_stalls`: actions whose observations made no progress (left the enrollment in a state
    it had been in before) before it fails, naming the loop. Waiting for the server to process
    something is not a stall: it is paced (`wait_first` doubling to `wait_cap` seconds) and
    bounded by `processing_timeout` seconds per resource.
    """

    max_stalls: int = setting_default("max_actions")
    processing_timeout: float = setting_default("processing_timeout")
    wait_first: float = 0.2
    wait_cap: float = 5.0
    # A GET after compute even when its answer proves it.
    validate_with_get: bool = setting_default("validate_with_get")

    def wait_delay(self, polls: int) -> float:
        """Seconds before poll number `polls` (0-based): 0.2, 0.4, 0.8 … up to 5."""
        return min(self.wait_cap, self.wait_first * 2.0 ** min(polls, 30))


@dataclass(frozen=True)
class Wait:
    """Polls of one resource that the server is still processing, and when they began."""

    polls: int
    started: float  # monotonic seconds of the first poll
    last: float  # monotonic seconds of the latest poll


@dataclass(frozen=True)
class Verdict:
    """An outcome an observation already settled (e.g. an audio of another identity)."""

    outcome: Outcome
    step: Step
    reason: str
    status: int | None = None


@dataclass(frozen=True)
class View:
    plan: Plan
    limits: Limits = Limits()
    voiceprint: VoiceprintSeen | Unknown | Absent = UNKNOWN
    identity_ready: bool = False
    audios: dict[str, AudioSeen | Unknown | Absent] = field(default_factory=dict)
    # The sha256 of every audio the voiceprint holds, sorted, repeats kept ("?handle" for an
    # audio that is not one of ours); None until listed (or built by creating it empty).
    held: tuple[str, ...] | None = None
    listed: bool = False  # `held` is from a listing made after our last change to it
    computed_here: bool = False  # this run (or its journal) computed the voiceprint
    compute_accepted: bool = False  # the server took a compute and is still processing it
    validated: bool = False
    validated_by: str | None = None  # "compute answer", "settled read" or "get"
    credits_exhausted: bool = False
    credits_reason: str = ""  # the server's message, with the step that got it
    credits_step: Step = Step.COMPUTE
    verdict: Verdict | None = None
    attempts: dict[str, int] = field(default_factory=dict)  # transient failures per step
    waits: dict[str, Wait] = field(default_factory=dict)  # per resource still processing
    stalls: tuple[tuple[Step, str], ...] = ()  # actions that made no progress, in order
    seen: frozenset[int] = frozenset()  # fingerprints of the states reached so far

    def audio(self, sha: str) -> AudioSeen | Unknown | Absent:
        return self.audios.get(sha, UNKNOWN)

    def facts(self) -> tuple[object, ...]:
        """Everything that says how far the enrollment got (not the counters about it)."""
        return (
            self.voiceprint,
            self.identity_ready,
            tuple(sorted(self.audios.items(), key=lambda item: item[0])),
            self.held,
            self.listed,
            self.computed_here,
            self.compute_accepted,
            self.validated,
            self.credits_exhausted,
            self.verdict,
        )
