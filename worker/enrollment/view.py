"""What is known about one enrollment: the values the pure rules decide on.

Owns: what the server was last seen to hold (`AudioSeen`, `VoiceprintSeen`), what the manifest
asks for (`Plan`), the bounds of one enrollment (`Limits`), an outcome reached (`Done`), an
add's 404 (`AddNotFound`) and the whole `View`. Plain frozen data, no behaviour beyond small
queries: `decide` lives in `rules.py`, `observe` and the progress accounting in `observe.py`.
Outcomes and steps are the journal's words (`worker.journal.records`), so that the journal can
be read without the rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from worker.config.settings import Existing, Settings, setting_default
from worker.journal.records import Outcome, Step

MAX_ATTEMPTS_PER_STEP = 4  # transient failures of one step before it fails (`Limits`)
CREDITS_REASON = "credits exhausted: compute paused"


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
    # What a computed voiceprint that differs gets (README "Customers already enrolled").
    existing: Existing = "conflict"
    names: tuple[str, ...] = ()  # each file as the manifest names it, for reasons
    # Only the audios, uploaded and available; the voiceprint is not touched (the swap's
    # delete path: the new audios are ready before the old voiceprint goes).
    audios_only: bool = False

    def files(self, shas: tuple[str, ...]) -> str:
        """`file_list` as one text: "[calls/ann.wav (sha256 78c57a93b76d), …]"."""
        return "[" + ", ".join(self.file_list(shas)) + "]"

    def file_list(self, shas: tuple[str, ...]) -> list[str]:
        """Audios for a person: the manifest's files by name and sha256 prefix, others by
        sha256 prefix (ours, not in this manifest) or handle (not uploaded by this worker)."""
        named = dict(zip(self.shas, self.names, strict=False))
        shown = []
        for sha in sorted(shas, key=lambda sha: (sha not in named, named.get(sha, ""), sha)):
            if sha.startswith("?"):
                shown.append(f"audio {sha[1:]} (not uploaded by this worker)")
            elif sha in named:
                shown.append(f"{named[sha]} (sha256 {sha[:12]})")
            elif self.names:
                shown.append(f"sha256 {sha[:12]} (not in this manifest)")
            else:  # a migration: the manifest names no file
                shown.append(f"sha256 {sha[:12]}")
        return shown


@dataclass(frozen=True)
class Limits:
    """Bounds and policy of one enrollment (settings `max_actions`, `processing_timeout`,
    `validate_with_get`).

    `max_stalls`: actions whose observations made no progress (left the enrollment in a state
    it had been in before) before it fails, naming the loop. Waiting for the server to process
    something is not a stall: it is paced (`wait_first` doubling to `wait_cap` seconds) and
    bounded by `processing_timeout` seconds per resource.

    `max_attempts` (not a setting): transient failures of one step (`View.attempts`) at which
    the enrollment fails, "gave up after retries". Each of them already spent the client's
    retries of one request; what that adds up to is `requests.py`, "the most one step may cost".
    """

    max_stalls: int = setting_default("max_actions")
    max_attempts: int = MAX_ATTEMPTS_PER_STEP
    processing_timeout: float = setting_default("processing_timeout")
    wait_first: float = 0.2
    wait_cap: float = 5.0
    # A GET after compute even when its answer proves it.
    validate_with_get: bool = setting_default("validate_with_get")

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_stalls=settings.max_actions,
            processing_timeout=settings.processing_timeout,
            validate_with_get=settings.validate_with_get,
        )

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
class Done:
    """An outcome reached: the last action `decide` returns, and what an answer may settle
    before the rules get there (a refusal, `observe.Rejected`: kept in `View.verdict`).

    `step` and `reason` say which step failed and why (none for `enrolled` or `unchanged`);
    `status` is the HTTP status that settled it, when an answer did.
    """

    outcome: Outcome
    step: Step | None = None
    reason: str = ""
    status: int | None = None


@dataclass(frozen=True)
class AddNotFound:
    """Adding audio `handle` (file `sha`) answered 404 with `reason`; `audio_gone`: a read of
    the audio right after found none either (else the voiceprint or identity is missing)."""

    sha: str
    handle: str
    audio_gone: bool
    reason: str
    status: int | None = 404


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
    verdict: Done | None = None  # settled by an observation
    # Transient failures per step ("audio:<sha>": unknown outcomes of one file's create), and
    # the latest one's reason; `decide` gives up at `Limits.max_attempts`.
    attempts: dict[str, int] = field(default_factory=dict)
    last_transient: str = ""
    add_not_found: AddNotFound | None = None  # an add's 404, until the rules act on it
    lost: frozenset[str] = frozenset()  # files whose audio the server lost, looked for again
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
            self.add_not_found,
            self.lost,
        )
