"""The checks every manifest format shares: a candidate enrollment in, an enrollment or its
problems out, one small function per rule.

Owns: `Candidate` (one enrollment as written, JSON or CSV, before validation), `Builder.build`
(owner, space, identity and voiceprint as handles, the model, minAudios, alias, createIdentity,
each audio and the count of audios, in that order, so problems read in the manifest's order)
and the warnings a walk collects (a deprecated model, once per model). What concerns several
enrollments (duplicates, one audio for two identities) is `cross`; what a format means by its
fields is `json` and `csv`. Pure: no file is read here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.audio.inspect import model_problem, model_warning
from worker.manifest.given import given_values
from worker.manifest.models import Enrollment, ManifestDefaults, Problem, RejectedEnrollment
from worker.manifest.policy import policy_problem
from worker.manifest.values import (
    DEFAULT_VOICEPRINT,
    alias_problem,
    audio_path,
    bool_value,
    channel_value,
    handle_problem,
    min_audios,
    model_text,
    show,
)

# An audio given as an object: {"path": "calls/c1.wav", "channel": 1}.
_AUDIO_KEYS = frozenset({"path", "channel"})


@dataclass
class AudioIn:
    raw: Any  # a path, or {"path": …, "channel": …}
    field: str  # "audios[1]" or "audio"
    place: str  # where to point the person: the enrollment's place, or the CSV row's line
    channel: Any = None  # the CSV `channel` cell, when the file has that column


@dataclass
class Candidate:
    """One enrollment as written, before validation; `None` means "not given"."""

    source: str
    place: str
    position: int
    values: dict[str, Any]  # JSON names: identity, voiceprint, owner, space, model, …
    audios: list[AudioIn]
    rows: tuple[dict[str, str], ...] = ()
    row_lines: tuple[int, ...] = ()  # CSV: the line of each of `rows`
    preset: list[Problem] = field(default_factory=list)  # found before validation
    audios_invalid: bool = False  # `audios` was given but is not a list (already reported)
    broken: bool = False  # not even an object: `preset` says why, nothing else to check


@dataclass
class _Audios:
    """The audios of one enrollment that passed, in manifest order."""

    paths: list[Path] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    places: list[str] = field(default_factory=list)
    channels: list[int | None] = field(default_factory=list)


def audio_entry(item: AudioIn) -> tuple[str, int | None] | str:
    """(path, channel) of one listed audio, or the reason it cannot be one."""
    raw, channel = item.raw, item.channel
    if isinstance(raw, dict):
        unknown = sorted(str(k) for k in raw if k not in _AUDIO_KEYS)
        if unknown:
            return f"unknown key {show(unknown[0])} (an audio has path and channel)"
        if "path" not in raw:
            return 'an audio object needs a "path"'
        raw, channel = raw["path"], raw.get("channel")
    if not isinstance(raw, str):
        return "must be a path (text), or an object with path and channel"
    checked = channel_value(channel)
    if isinstance(checked, str):
        return checked
    return raw, checked


def json_place(position: int) -> str:
    return f"enrollments[{position}]"


class Builder:
    """Validates candidates into enrollments and collects the warnings of one file's walk."""

    def __init__(
        self,
        file: str,
        defaults: ManifestDefaults,
        field_names: Mapping[str, str],
        place_of: Callable[[int], str] | None = None,
    ):
        self.file = file
        self.defaults = defaults
        self.names = field_names  # JSON name -> name shown (CSV shows its column names)
        self.place_of = place_of or json_place  # a position -> how a message names it
        self.warned_models: set[str] = set()
        self.warnings: list[Problem] = []

    def problem(
        self, place: str, name: str, value: Any, reason: str, *, given: bool = True
    ) -> Problem:
        return Problem(
            file=self.file,
            place=place,
            field=self.names.get(name, name),
            value=show(value) if given else None,
            reason=reason,
        )

    def build(self, cand: Candidate) -> Enrollment | RejectedEnrollment:
        problems = list(cand.preset)
        if cand.broken:
            return self._rejected(cand, problems)
        d = self.defaults
        owner = self._handle(cand, problems, "owner", d.owner, _MISSING_OWNER)
        space = self._handle(cand, problems, "space", d.space, _MISSING_SPACE)
        identity = self._handle(cand, problems, "identity", None, "is missing")
        voiceprint = self._handle(cand, problems, "voiceprint", DEFAULT_VOICEPRINT, "is missing")
        model = self._model(cand, problems)
        minimum = self._min_audios(cand, problems)
        alias = self._alias(cand, problems)
        create = self._create_identity(cand, problems)
        existing = self._policy(cand, problems, "existing", self.defaults.existing)
        retire = self._policy(cand, problems, "retire", self.defaults.retire)
        audios = self._audios(cand, problems)
        self._audio_count(cand, problems, minimum)
        complete = owner and space and identity and voiceprint and model and minimum
        if not problems and not (complete and create is not None):
            # Every missing value above adds a problem; reaching this is a parser bug, and it
            # rejects this enrollment rather than stopping the job.
            problems.append(
                self.problem(cand.place, "", None, "could not be read (internal error)")
            )
        if problems:
            valid = {"owner": owner, "space": space, "identity": identity, "voiceprint": voiceprint}
            return self._rejected(cand, problems, **valid)
        return Enrollment(
            owner=owner,
            space=space,
            identity=identity,
            voiceprint=voiceprint,
            model=model,
            min_audios=minimum,
            alias=alias,
            create_identity=create,
            existing=existing,
            retire=retire,
            audios=tuple(audios.paths),
            audio_names=tuple(audios.names),
            audio_fields=tuple(audios.fields),
            audio_places=tuple(audios.places),
            # Kept only when some file names a channel: most manifests never do.
            audio_channels=tuple(audios.channels)
            if any(c is not None for c in audios.channels)
            else (),
            source=cand.source,
            position=cand.position,
            rows=cand.rows,
            row_lines=cand.row_lines,
        )

    def _rejected(
        self, cand: Candidate, problems: list[Problem], **valid: str | None
    ) -> RejectedEnrollment:
        """`cand` cannot run; `valid`: the handles among owner, space, identity, voiceprint
        that passed (None where not)."""
        return RejectedEnrollment(
            source=cand.source,
            position=cand.position,
            problems=tuple(problems),
            rows=cand.rows,
            row_lines=cand.row_lines,
            given=self.given(cand),
            **valid,
        )

    def given(self, cand: Candidate) -> dict[str, Any]:
        """The candidate as written, for a rejected enrollment's rows (worker.manifest.given)."""
        audios = [(item.raw, item.channel) for item in cand.audios]
        return given_values(cand.values, audios, self.defaults)

    # --- one rule each ------------------------------------------------------------------------

    def _handle(
        self,
        cand: Candidate,
        problems: list[Problem],
        name: str,
        fallback: str | None,
        missing: str,
    ) -> str | None:
        """owner, space, identity, voiceprint: a handle (contract §1), or a default."""
        value = cand.values.get(name)
        if value is None:
            value = fallback
        if value is None:
            problems.append(self.problem(cand.place, name, None, missing, given=False))
            return None
        if not isinstance(value, str):
            problems.append(self.problem(cand.place, name, value, "must be text"))
            return None
        if reason := handle_problem(value):
            problems.append(self.problem(cand.place, name, value, reason))
            return None
        return value

    def _model(self, cand: Candidate, problems: list[Problem]) -> str | None:
        """A model this worker knows; a deprecated one warns once per file."""
        model = model_text(cand.values.get("model", self.defaults.model))
        if isinstance(model, tuple):
            problems.append(self.problem(cand.place, "model", model[0], model[1]))
            return None
        if reason := model_problem(model):
            problems.append(self.problem(cand.place, "model", model, reason))
            return None
        if (warning := model_warning(model)) and model not in self.warned_models:
            self.warned_models.add(model)
            found = self.problem(cand.place, "model", model, warning)
            self.warnings.append(found.model_copy(update={"severity": "warning"}))
        return model

    def _min_audios(self, cand: Candidate, problems: list[Problem]) -> int | None:
        checked = min_audios(cand.values.get("minAudios", 1))
        if isinstance(checked, str):
            value = cand.values.get("minAudios")
            problems.append(self.problem(cand.place, "minAudios", value, checked))
            return None
        return checked

    def _alias(self, cand: Candidate, problems: list[Problem]) -> str | None:
        alias = cand.values.get("alias")
        if alias is None:
            return None
        if not isinstance(alias, str):
            problems.append(self.problem(cand.place, "alias", alias, "must be text or null"))
        elif reason := alias_problem(alias):
            problems.append(self.problem(cand.place, "alias", alias, reason))
        return alias

    def _create_identity(self, cand: Candidate, problems: list[Problem]) -> bool | None:
        create = bool_value(cand.values.get("createIdentity", True))
        if create is None:
            value = cand.values.get("createIdentity")
            problems.append(
                self.problem(cand.place, "createIdentity", value, "must be true or false")
            )
        return create

    def _policy(self, cand: Candidate, problems: list[Problem], name: str, default: str) -> Any:
        """`existing` or `retire`: one of its words (worker.manifest.policy), or the default."""
        value = cand.values.get(name, default)
        if reason := policy_problem(name, value):
            problems.append(self.problem(cand.place, name, value, reason))
            return default
        return value.strip().lower()

    def _audios(self, cand: Candidate, problems: list[Problem]) -> _Audios:
        """Each audio: a path inside the audio root, a channel, never twice in one enrollment."""
        out = _Audios()
        first_seen: dict[tuple[Path, int | None], str] = {}
        for item in cand.audios:
            entry = audio_entry(item)
            if isinstance(entry, str):
                problems.append(self.problem(item.place, item.field, item.raw, entry))
                continue
            raw, channel = entry
            resolved = audio_path(raw, self.defaults.audio_root)
            if isinstance(resolved, str):
                problems.append(self.problem(item.place, item.field, raw, resolved))
                continue
            path, name = resolved
            if (path, channel) in first_seen:
                also = f"listed twice (also {first_seen[path, channel]})"
                problems.append(self.problem(item.place, item.field, raw, also))
                continue
            first_seen[path, channel] = item.field if item.place == cand.place else item.place
            out.paths.append(path)
            out.names.append(name)
            out.fields.append(self.names.get(item.field, item.field))
            out.places.append(item.place)
            out.channels.append(channel)
        return out

    def _audio_count(self, cand: Candidate, problems: list[Problem], minimum: int | None) -> None:
        """At least one audio, and at least minAudios of them."""
        if not cand.audios and not cand.audios_invalid:
            problems.append(self.problem(cand.place, "audios", None, "none listed", given=False))
        elif cand.audios and minimum is not None and len(cand.audios) < minimum:
            n = len(cand.audios)
            reason = f"{n} file{'' if n == 1 else 's'} listed but minAudios is {minimum}"
            problems.append(self.problem(cand.place, "audios", None, reason, given=False))


_MISSING_OWNER = "is missing; name it in the manifest or set ENROLLER_OWNER"
_MISSING_SPACE = "is missing; name it in the manifest or set ENROLLER_SPACE"
