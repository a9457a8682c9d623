"""The models a parsed manifest is made of: problems, defaults, enrollments, whole results.

Owns: `Problem` (one thing wrong, located for a person: `batch.csv line 14: identity "Cust 7":
handles are …`), `ManifestDefaults` (what a manifest falls back to), `Enrollment` (valid, every
default applied: what the engine runs) and `RejectedEnrollment`. Pure data: nothing here reads
a file or checks a value; `build` decides what is valid.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from worker.audio.inspect import DEFAULT_MODEL
from worker.base.text import SafeStr
from worker.config.settings import Existing, Retire, setting_default

if TYPE_CHECKING:
    from worker.config.settings import Settings

Kind = Literal["job", "single", "csv", "migrate", "voiceid"]


class Problem(BaseModel):
    """One thing wrong with a manifest, located precisely enough to fix it.

    `place` is a JSON path (`enrollments[3]`), CSV line(s) (`line 14`, `lines 14-16`), a JSON
    syntax position (`line 3 column 5`) or empty for the whole file. `value` is the offending
    value as shown to a person (strings quoted), or None.
    """

    model_config = ConfigDict(frozen=True)

    # Every text is safe to write (worker.base.text): a manifest may quote lone surrogates.
    file: SafeStr
    place: SafeStr = ""
    field: SafeStr = ""
    value: SafeStr | None = None
    reason: SafeStr
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        head = f"{self.file} {self.place}" if self.place else self.file
        parts = [head]
        if self.severity == "warning":
            parts.append("warning")
        if label := self._label():
            parts.append(label)
        parts.append(self.reason)
        return ": ".join(parts)

    def brief(self) -> str:
        """The problem without its file and place, for a report row that already has both."""
        label = self._label()
        return f"{label}: {self.reason}" if label else self.reason

    def _label(self) -> str:
        label = self.field
        if self.value is not None:
            label = f"{label} {self.value}" if label else self.value
        return label


class ManifestDefaults(BaseModel):
    """What a manifest falls back to when it names nothing: a small, explicit config object."""

    model_config = ConfigDict(frozen=True)

    audio_root: Path  # absolute; every audio path must lie inside it
    owner: str | None = None
    space: str | None = None
    model: str = DEFAULT_MODEL
    max_bytes: int = setting_default("max_manifest_bytes")
    # How preflight treats recordings (worker.audio.derive): stereo without a channel, other
    # formats.
    stereo: Literal["channel", "downmix"] = setting_default("stereo")
    convert: bool = setting_default("convert")
    existing: Existing = setting_default("existing")
    retire: Retire = setting_default("retire")
    # A Voice ID SpeakerId that is not a handle: derived from its hash, or refused.
    speaker_handles: Literal["derive", "strict"] = setting_default("speaker_handles")
    # How far below the voice rule a file is still uploaded (worker.audio.voice_rule).
    voice_margin: float = setting_default("voice_margin")
    # ENROLLER_INLINE_UPLOAD_MAX_BYTES, for `enroller plan/check` to count the uploads as run.
    inline_upload_max_bytes: int = setting_default("inline_upload_max_bytes")

    @classmethod
    def from_settings(cls, settings: Settings) -> ManifestDefaults:
        return cls(
            audio_root=Path(os.path.abspath(settings.resolved_audio_root)),
            owner=settings.owner,
            space=settings.space,
            model=settings.model,
            max_bytes=settings.max_manifest_bytes,
            stereo=settings.stereo,
            convert=settings.convert,
            existing=settings.existing,
            retire=settings.retire,
            speaker_handles=settings.speaker_handles,
            voice_margin=settings.voice_margin,
            inline_upload_max_bytes=settings.inline_upload_max_bytes,
        )


class Enrollment(BaseModel):
    """One valid enrollment, every default applied: what the engine runs."""

    model_config = ConfigDict(frozen=True)

    owner: str
    space: str
    identity: str
    voiceprint: str
    model: str
    min_audios: int
    alias: str | None
    create_identity: bool
    # What becomes of a voiceprint already computed that differs (worker.manifest.policy).
    existing: Existing = "conflict"
    retire: Retire = "delete"
    # Absolute, lexically normalised, inside the audio root; symlinks are checked at preflight.
    audios: tuple[Path, ...]
    # The same files relative to the audio root (POSIX form), as shown to people.
    audio_names: tuple[str, ...]
    # Where each file is named, for messages: field ("audios[1]" or the CSV column) and place
    # ("enrollments[3]" or the CSV row's "line 14").
    audio_fields: tuple[str, ...] = ()
    audio_places: tuple[str, ...] = ()
    # The channel named for each file (0-based), None where none was: a stereo file needs one.
    audio_channels: tuple[int | None, ...] = ()
    source: str  # "enrollments[3]", "enrollment" (single form), "line 14", "lines 14-16"
    position: int  # order in the manifest, from 0
    rows: tuple[dict[str, str], ...] = ()  # CSV: the original rows, for the failures CSV
    row_lines: tuple[int, ...] = ()  # CSV: the line of each of `rows`
    # A migration's (worker.manifest.migration): the model the voiceprint moves from; it names
    # no file, its audios are the old voiceprint's on the server.
    migrate_from: str | None = None
    # A Voice ID request's (worker.manifest.voiceid): its RequestId, the row's key in every
    # report, and its SpeakerId as written (the identity may be a handle derived from it).
    request_id: str | None = None
    speaker_id: str | None = None

    @property
    def channels(self) -> tuple[int | None, ...]:
        """The channel named for each file, None where none was (also for older models)."""
        return self.audio_channels or (None,) * len(self.audios)

    @property
    def key(self) -> str:
        """owner/space/identity/voiceprint: unique within a job (duplicates are rejected)."""
        return f"{self.owner}/{self.space}/{self.identity}/{self.voiceprint}"

    def audio_keys(self) -> list[str]:
        """owner/space/path[#channel] of each file: one channel of a call is one audio."""
        return [
            f"{self.owner}/{self.space}/{path}" + ("" if ch is None else f"#{ch}")
            for path, ch in zip(self.audios, self.channels, strict=True)
        ]


class RejectedEnrollment(BaseModel):
    """An enrollment that cannot run, with every reason; fields are best effort (may be None)."""

    model_config = ConfigDict(frozen=True)

    source: str
    position: int
    owner: str | None = None
    space: str | None = None
    identity: str | None = None
    voiceprint: str | None = None
    problems: tuple[Problem, ...]
    rows: tuple[dict[str, str], ...] = ()
    request_id: str | None = None  # a Voice ID request's, as on `Enrollment`
    speaker_id: str | None = None
    row_lines: tuple[int, ...] = ()
    # The enrollment as written, JSON-ready, defaults filled in (worker.manifest.given): what
    # its report row, failures CSV row and retry manifest entry show, though it cannot run.
    given: dict[str, Any] = Field(default_factory=dict)


class Migration(BaseModel):
    """What a migration manifest asks for, every default applied."""

    model_config = ConfigDict(frozen=True)

    from_model: str
    to_model: str
    owner: str
    space: str
    voiceprint: str
    retire: Retire
    identities: tuple[str, ...] | Literal["all"]

    def enrollment(self, identity: str, position: int, source: str) -> Enrollment:
        """One identity's move: `existing: overwrite` onto `to_model`, from no file."""
        return Enrollment(
            owner=self.owner,
            space=self.space,
            identity=identity,
            voiceprint=self.voiceprint,
            model=self.to_model,
            min_audios=1,
            alias=None,
            create_identity=False,
            existing="overwrite",
            retire=self.retire,
            audios=(),
            audio_names=(),
            source=source,
            position=position,
            migrate_from=self.from_model,
        )

    def document(self, identities: Iterable[str] | Literal["all"]) -> dict[str, Any]:
        return {
            "migrate": {"from": self.from_model, "to": self.to_model},
            "owner": self.owner,
            "space": self.space,
            "voiceprint": self.voiceprint,
            "retire": self.retire,
            "identities": identities if identities == "all" else list(identities),
        }


ManifestItem = Enrollment | RejectedEnrollment
