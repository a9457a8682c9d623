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

import errno
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import anyio
import anyio.to_thread
import structlog
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from worker.audio.derive import DerivedInfo
from worker.audio.voice_rule import LocalVoice
from worker.base.errors import JobMustCheckpoint, JobMustFail
from worker.base.fsutil import fsync_dir
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


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    at: datetime = Field(default_factory=utcnow)


class JobStarted(_Record):
    kind: Literal["job_started"] = "job_started"
    job_id: str
    manifest: SafeStr  # a file name need not be UTF-8 (os.listdir gives surrogate escapes)
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
    | EnrollmentOutcome
    | JobFinished,
    Field(discriminator="kind"),
]
_RECORD = TypeAdapter(JournalRecord)


class JournalCorrupt(JobMustFail):
    """A line other than the last one does not parse: the file was damaged, not torn."""


class JournalWriteFailed(JobMustCheckpoint):
    """An append did not reach the disk (full disk, I/O error): the records it held are lost.

    Deliberately not an `OSError`: nobody may mistake it for a problem with an audio file. Once
    raised, the journal refuses every later append too, since a partial write may have left a
    fragment that a later record must never be glued to; the job stops and, on its next start,
    the torn tail is cut off (`heal_torn_tail`).
    """


_TAIL_CHUNK = 1 << 16


def heal_torn_tail(path: Path) -> int:
    """Cut a torn last line (a crash mid-append) off the journal; returns the bytes removed.

    Without this, the next append would be glued to the fragment and the line would become a
    corrupt one in the middle of the file (`JournalCorrupt`) after one more restart.
    """
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return 0
    try:
        size = os.fstat(fd).st_size
        end = size
        while end > 0:
            start = max(0, end - _TAIL_CHUNK)
            chunk = os.pread(fd, end - start, start)
            if end == size and chunk.endswith(b"\n"):
                return 0  # whole: the common case costs one small read
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                end = start + newline + 1
                break
            end = start
        os.ftruncate(fd, end)
        os.fsync(fd)
    finally:
        os.close(fd)
    log.warning("journal_torn_tail_truncated", path=str(path), bytes=size - end)
    return size - end


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


def write_and_fsync(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd`, then fsync it: the journal's one way to the disk."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    os.fsync(fd)


# How a batch reaches the disk (`Journal(write=...)`): a test counts or fails the writes.
JournalWrite = Callable[[int, bytes], None]


class Journal:
    """Durable, group-committed appends to one job's journal file."""

    def __init__(self, path: Path, *, write: JournalWrite = write_and_fsync) -> None:
        self.path = path
        self._write_batch = write
        self._fd: int | None = None
        self._pending: list[bytes] = []
        self._queued = 0  # sequence number of the last record queued
        self._flushed = 0  # sequence number of the last record on disk
        self._lock = anyio.Lock()
        self._broken: str | None = None  # why an earlier write failed; every append refuses

    async def __aenter__(self) -> Journal:
        await anyio.to_thread.run_sync(self._open)
        return self

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        heal_torn_tail(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        fsync_dir(self.path.parent)

    async def __aexit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    async def append(self, *records: _Record) -> None:
        """Return once every given record is on disk; raise `JournalWriteFailed` otherwise.

        Group commit: whoever holds the lock writes every record queued so far. A waiter whose
        records were in a batch that failed raises too: `_flushed` only ever counts records
        that were fsynced, and after a failure nothing counts as flushed again.
        """
        self._refuse_if_broken()
        for record in records:
            self._pending.append(record.model_dump_json().encode() + b"\n")
        self._queued += len(records)
        mine = self._queued
        async with self._lock:
            self._refuse_if_broken()  # the holder before us failed: our records went with it
            if self._flushed >= mine:
                return  # an earlier holder wrote ours along with its own
            batch, self._pending = self._pending, []
            upto = self._queued
            try:
                await anyio.to_thread.run_sync(self._write, b"".join(batch))
            except OSError as exc:
                self._broken = f"journal write failed: {exc.strerror or exc}"
                log.error("journal_write_failed", path=str(self.path), error=self._broken)
                raise JournalWriteFailed(f"{self.path}: {self._broken}") from None
            self._flushed = upto

    def _refuse_if_broken(self) -> None:
        if self._broken is not None:
            raise JournalWriteFailed(f"{self.path}: {self._broken}; records not written")

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            raise OSError(errno.EBADF, "journal used outside its context")
        self._write_batch(self._fd, data)
