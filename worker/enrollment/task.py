"""One enrollment as the job hands it to the driver, and its row in the journal and report.

Owns: `EnrollmentTask` (a preflighted enrollment: everything the driver needs, nothing it must
look up), the `sha256:` alias that finds the audio made from one file again, and the outcome
record built for any enrollment, runnable or not. Plain data, but for deleting an ended
enrollment's derived files.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from worker.audio.derive import DerivedUpload
from worker.audio.files import VerifiedUpload
from worker.audio.voice_rule import LocalVoice, with_local_voice
from worker.config.settings import Existing, Retire
from worker.enrollment.view import Plan
from worker.journal.records import EnrollmentOutcome, Outcome

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
    # The files uploaded as derived copies (a channel, a mix, a conversion; worker.audio.derive).
    derived: tuple[DerivedUpload, ...] = ()
    # Downloads of S3 objects in the job's work folder (worker.objects): deleted at the end.
    scratch: tuple[Path, ...] = ()
    # Each file's voice as preflight measured it (worker.audio.voice), shown beside the server's.
    local_voice: tuple[LocalVoice, ...] = ()
    # Each file as the manifest names it (relative to the audio root), for reasons.
    file_names: tuple[str, ...] = ()
    # A computed voiceprint that differs: conflict, skip or overwrite; what overwrite does with
    # the old one: delete or keep (README "Customers already enrolled").
    existing: Existing = "conflict"
    retire: Retire = "delete"
    audios_only: bool = False  # the swap's delete path: upload the audios, touch no voiceprint
    # A migration (README "Moving a space to a new model"): the model its voiceprint is moved
    # from, and the new voiceprint's audios, the old one's on the server: (key, handle) each,
    # the key as a listing names it (`Reads.held`). No file is read or uploaded.
    migrate_from: str | None = None
    server_audios: tuple[tuple[str, str], ...] = ()
    # A Voice ID request's RequestId and SpeakerId, for its report row.
    request_id: str | None = None
    speaker_id: str | None = None

    @property
    def plan(self) -> Plan:
        return Plan(
            identity=self.identity,
            voiceprint=self.voiceprint,
            model=self.model,
            min_audios=self.min_audios,
            create_identity=self.create_identity,
            shas=tuple(key for key, _ in self.server_audios) or tuple(f.sha256 for f in self.files),
            existing=self.existing,
            names=self.file_names,
            audios_only=self.audios_only,
        )

    def under(self, voiceprint: str, *, audios_only: bool = False) -> EnrollmentTask:
        """The new voiceprint a swap builds under `voiceprint` (the manifest's handle, or the
        one beside it): the ordinary upsert with `existing: conflict`, journaled under its own
        key, which is also what the API bills its compute to (the usage check's key)."""
        key = f"{self.owner}/{self.space}/{self.identity}/{voiceprint}"
        return replace(
            self, key=key, voiceprint=voiceprint, existing="conflict", audios_only=audios_only
        )

    def outcome(self, outcome: Outcome, **fields: object) -> EnrollmentOutcome:
        derived = [d.info() for d in self.derived]
        fields = with_local_voice(fields, self.local_voice)
        return outcome_record(self, outcome, model=self.model, derived=derived, **fields)

    def discard_derived(self) -> None:
        """Delete this enrollment's derived files and downloads: it has ended (blocking)."""
        for d in self.derived:
            d.discard()
        for path in self.scratch:
            path.unlink(missing_ok=True)


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
    @property
    def request_id(self) -> str | None: ...
    @property
    def speaker_id(self) -> str | None: ...


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
        request_id=ref.request_id,
        speaker_id=ref.speaker_id,
        **fields,  # type: ignore[arg-type]
    )
