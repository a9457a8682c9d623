"""The per-job journal: an append-only JSON-lines file that makes every job resumable.

Owns: the record types, durable appends, and reading a journal back after a crash. A record is
on disk (fsync) before `append` returns, so a step that depends on a remote effect only runs
once that effect is journaled; intents are journaled before non-idempotent creates. Appends
from many enrollments are group-committed: whoever holds the lock writes and fsyncs every
record queued so far, so the fsync rate stays flat however many enrollments run at once.

It never decides what to do with what it reads: `JournalState` is plain knowledge for the
engine to reconcile against the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from worker.audio.derive import DerivedInfo
from worker.audio.voice_rule import LocalVoice
from worker.base.errors import JobMustFail
from worker.base.text import SafeStr

log = structlog.get_logger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Outcome(StrEnum):
    ENROLLED = "enrolled"  # computed by this run and validated
    UNCHANGED = "unchanged"  # already computed earlier with the same model and audios
    FAILED = "failed"  # a step failed permanently; the report says which and why
    CONFLICT = "conflict"  # the voiceprint differs from the manifest; left as it is
    SKIPPED = "skipped"  # never finished for a reason outside the enrollment (shutdown, credits)
    KEPT = "kept"  # differs from the manifest; `existing: skip` left it as it was
    REPLACED = "replaced"  # differed; `existing: overwrite` (or a migration) swapped a new one in


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
    SWAP = "swap"  # replacing a computed voiceprint (worker.enrollment.swap)


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    at: datetime = Field(default_factory=utcnow)


class JobStarted(_Record):
    kind: Literal["job_started"] = "job_started"
    job_id: str
    manifest: SafeStr  # a file name from a Windows share may not be UTF-8
    manifest_sha256: str
    enrollments: int


class AudioIntent(_Record):
    """About to create an audio for this file: after a crash, look it up by alias first."""

    kind: Literal["audio_intent"] = "audio_intent"
    key: str
    sha256: str


class AudioCreated(_Record):
    kind: Literal["audio_created"] = "audio_created"
    key: str
    sha256: str
    audio: str


class AudioUploaded(_Record):
    kind: Literal["audio_uploaded"] = "audio_uploaded"
    key: str
    sha256: str
    audio: str


class AudioDerived(_Record):
    """A derived file (one channel, a mix, a conversion) is about to be uploaded as `sha256`.

    Ties (source sha256, channel, conversion), the `derivation` key, to the bytes' hash, so
    that a restart finds the earlier upload by its alias instead of converting again.
    """

    kind: Literal["audio_derived"] = "audio_derived"
    key: str
    derivation: str  # worker.audio.derive.Derivation.key
    sha256: str
    size: int


class ComputeIntent(_Record):
    """About to spend a credit: the billed event of the API."""

    kind: Literal["compute_intent"] = "compute_intent"
    key: str


class Computed(_Record):
    kind: Literal["computed"] = "computed"
    key: str
    voiceprint_id: str | None = None


class SwapStarted(_Record):
    """A computed voiceprint is being replaced (README "Customers already enrolled"): written
    before the first change, so that a restart finishes this swap, and only this one.

    `via`: "rename" builds the new voiceprint under `next_handle` and switches it in;
    "delete" deletes the old one once the new audios are available and builds in its place.
    `old_files`: what the old one held (sha256, "?handle" for audios not uploaded by us).
    """

    kind: Literal["swap_started"] = "swap_started"
    key: str
    via: Literal["rename", "delete"]
    retire: Literal["delete", "keep"]
    old_id: str
    old_model: str
    old_files: list[str] = Field(default_factory=list)
    # A migration builds the new voiceprint from the old one's audios: their handles (in the
    # order of `old_files`) and its minAudios, kept for a resume.
    old_audio_handles: list[str] = Field(default_factory=list)
    old_min_audios: int | None = None
    next_handle: str
    retired_handle: str


class Replaced(BaseModel):
    """What a `replaced` row replaced: the old voiceprint and files, the new ones, and what
    became of the old one (`retired`: "deleted", or "kept as <handle>" and why)."""

    old_voiceprint_id: str
    old_model: str
    old_files: list[SafeStr]
    new_model: str
    new_files: list[SafeStr]
    retired: SafeStr


class ErrorInfo(BaseModel):
    model_config = ConfigDict(frozen=True)
    step: str
    status: int | None = None
    reason: SafeStr  # may quote the manifest or the server: always encodable (worker.base.text)


class EnrollmentOutcome(_Record):
    """The final word on one enrollment; also the report's row for it."""

    kind: Literal["outcome"] = "outcome"
    key: SafeStr
    identity: SafeStr
    voiceprint: SafeStr
    owner: SafeStr
    space: SafeStr
    source: SafeStr  # where the manifest names it: "enrollments[3]" or "line 14" / "lines 14-16"
    outcome: str
    model: str | None = None
    voiceprint_id: str | None = None
    state: str | None = None
    audios: list[str] = Field(default_factory=list)
    total_duration_s: float | None = None
    total_voice_s: float | None = None
    attempts: int = 1
    error: ErrorInfo | None = None
    derived: list[DerivedInfo] = Field(default_factory=list)  # files not uploaded as they are
    local_voice: list[LocalVoice] = Field(default_factory=list)  # preflight's own figures
    # How an enrolled voiceprint was validated: "compute answer", "settled read" or "get".
    validated_by: str | None = None
    replaced: Replaced | None = None  # outcome `replaced`: the old voiceprint and the new


class JobFinished(_Record):
    kind: Literal["job_finished"] = "job_finished"


JournalRecord = Annotated[
    JobStarted
    | AudioIntent
    | AudioCreated
    | AudioUploaded
    | AudioDerived
    | ComputeIntent
    | Computed
    | SwapStarted
    | EnrollmentOutcome
    | JobFinished,
    Field(discriminator="kind"),
]
_RECORD = TypeAdapter(JournalRecord)


class JournalCorrupt(JobMustFail):
    """A line other than the last one does not parse: the file was damaged, not torn."""


def read_lines(
    path: Path, start: int = 0, *, live: bool = False
) -> Iterator[tuple[int, bytes, int]]:
    """(offset, line, line number counted from `start`) of every whole line from `start` on.

    A torn last line (a crash mid-write) is skipped, nothing else. Reading never changes the
    file; `Journal` cuts the torn line off when it opens for appends. `live`: the journal is
    being appended to, so a last line without its newline is being written: skipped quietly.
    """
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return
    with fh:
        fh.seek(start)
        offset = start
        for number, line in enumerate(fh, 1):
            if not line.endswith(b"\n"):
                if not live:
                    log.warning("journal_torn_tail_skipped", path=str(path), line=number)
                return
            yield offset, line, number
            offset += len(line)


def parse_record(line: bytes, path: Path, number: int) -> JournalRecord:
    try:
        return _RECORD.validate_json(line)
    except ValidationError as exc:
        raise JournalCorrupt(f"{path} line {number}: {exc.errors()[0]['msg']}") from None


class EnrollmentMemory(BaseModel):
    """What the journal proves about one enrollment."""

    audios: dict[str, str] = Field(default_factory=dict)  # sha256 → audio handle
    uploaded: set[str] = Field(default_factory=set)  # sha256 whose file was sent
    intents: set[str] = Field(default_factory=set)  # sha256 with a create possibly in flight
    compute_sent: bool = False  # a compute may have been sent: a computed voiceprint is ours
    computed: bool = False
    swap: SwapStarted | None = None  # a replacement under way: finish it, never start another


class JournalState(BaseModel):
    """A journal read back: its start and end, and memory of the unfinished enrollments.

    Only unfinished enrollments are kept (an outcome drops its key), so this stays as small as
    the number of enrollments in flight when the job stopped. What finished enrollments left
    (done keys, computes, derived files) is asked of `worker.journal.index` instead.
    """

    started: JobStarted | None = None
    finished: bool = False
    memory: dict[str, EnrollmentMemory] = Field(default_factory=dict)

    def of(self, key: str) -> EnrollmentMemory:
        return self.memory.get(key) or EnrollmentMemory()

    def apply(self, record: JournalRecord) -> None:
        """Replay one record, in journal order."""
        match record:
            case JobStarted():
                self.started = self.started or record
            case JobFinished():
                self.finished = True
            case EnrollmentOutcome(key=key):
                self.memory.pop(key, None)
            case AudioIntent(key=key, sha256=sha):
                self.memory.setdefault(key, EnrollmentMemory()).intents.add(sha)
            case AudioCreated(key=key, sha256=sha, audio=audio):
                mem = self.memory.setdefault(key, EnrollmentMemory())
                mem.audios[sha] = audio
                mem.intents.discard(sha)
            case AudioUploaded(key=key, sha256=sha, audio=audio):
                mem = self.memory.setdefault(key, EnrollmentMemory())
                mem.audios[sha] = audio
                mem.uploaded.add(sha)
            case Computed(key=key):
                self.memory.setdefault(key, EnrollmentMemory()).computed = True
            case ComputeIntent(key=key):
                self.memory.setdefault(key, EnrollmentMemory()).compute_sent = True
            case SwapStarted(key=key):
                self.memory.setdefault(key, EnrollmentMemory()).swap = record
