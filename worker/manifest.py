"""Manifests: the JSON and CSV files operators drop, parsed into enrollments and problems.

Owns: the three manifest formats (JSON job, JSON single enrollment, CSV), their defaults, the
handle/alias/minAudios rules of the API contract, audio path containment (lexical: `..` and
absolute paths; symlinks are followed at preflight by `worker.audio`), duplicate detection, the
`Problem` a person reads (`batch.csv line 14: identity "Cust 7": handles are …`), and the
retry-manifest writer.

Parsing is pure: it takes bytes or text, a file name for messages and a `ManifestDefaults`,
and never touches the filesystem or `Settings`. A bad enrollment never sinks the others: it
becomes a `RejectedEnrollment` with its problems, and the good ones are still returned. Only
what spoils the whole file (unparseable, not UTF-8, empty, too large, no enrollments, missing
CSV columns, invalid job-level defaults) is a file problem. Nothing here ever raises for bad
input.

A `ManifestStream` builds enrollments one at a time as they are reached (`items()`): 50 000
`Enrollment` models at once cost ~100 MB, while a job only ever needs those in flight.
`ParsedManifest` (`collect()`) is the whole list, for `validate` and small files.
"""

from __future__ import annotations

import csv
import heapq
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from worker.audio import DEFAULT_MODEL, model_problem, model_warning
from worker.fsutil import NotRegularFile, open_regular
from worker.jsonscan import JsonScanError, iter_enrollments, scan_job
from worker.keyindex import KeyIndex
from worker.text import SafeStr, encode_text, has_lone_surrogate, safe_text
from worker.voice_rule import DEFAULT_VOICE_MARGIN

if TYPE_CHECKING:
    from worker.settings import Settings

HANDLE_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
HANDLE_MAX = 50
ALIAS_MAX = 100
MIN_AUDIOS_MIN, MIN_AUDIOS_MAX = 1, 20
DEFAULT_VOICEPRINT = "main"
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
_VALUE_SHOWN_MAX = 60
NOT_UNICODE = "is not valid Unicode text (a lone surrogate, e.g. an escape \\ud800 with no pair)"

Kind = Literal["job", "single", "csv"]

# JSON keys. `comment` is free text for people and ignored; anything else unknown is an error,
# because a misspelt key (`minaudios`) silently ignored would enroll with the wrong settings.
_JOB_KEYS = frozenset({"owner", "space", "model", "minAudios", "createIdentity", "enrollments"})
_ENROLLMENT_KEYS = frozenset(
    {
        "owner",
        "space",
        "identity",
        "voiceprint",
        "alias",
        "audios",
        "model",
        "minAudios",
        "createIdentity",
    }
)
_IGNORED_KEYS = frozenset({"comment"})

# CSV columns, matched case-insensitively and ignoring `_`, `-` and spaces (`min_audios`).
CSV_REQUIRED = ("identity", "audio")
CSV_OPTIONAL = (
    *("voiceprint", "model", "minAudios", "alias", "owner", "space", "createIdentity"),
    "channel",  # the customer's channel of a stereo recording, 0-based (worker.derive)
)
# An audio given as an object: {"path": "calls/c1.wav", "channel": 1}.
_AUDIO_KEYS = frozenset({"path", "channel"})
_TRUE = frozenset({"true", "yes", "y", "1"})
_FALSE = frozenset({"false", "no", "n", "0"})


# --- models ------------------------------------------------------------------------------------


class Problem(BaseModel):
    """One thing wrong with a manifest, located precisely enough to fix it.

    `place` is a JSON path (`enrollments[3]`), CSV line(s) (`line 14`, `lines 14-16`), a JSON
    syntax position (`line 3 column 5`) or empty for the whole file. `value` is the offending
    value as shown to a person (strings quoted), or None.
    """

    model_config = ConfigDict(frozen=True)

    # Every text is safe to write (worker.text): a manifest may quote lone surrogates.
    file: SafeStr
    place: SafeStr = ""
    field: SafeStr = ""
    value: SafeStr | None = None
    reason: SafeStr
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        head = f"{self.file} {self.place}" if self.place else self.file
        label = self.field
        if self.value is not None:
            label = f"{label} {self.value}" if label else self.value
        parts = [head]
        if self.severity == "warning":
            parts.append("warning")
        if label:
            parts.append(label)
        parts.append(self.reason)
        return ": ".join(parts)

    def brief(self) -> str:
        """The problem without its file and place, for a report row that already has both."""
        label = self.field
        if self.value is not None:
            label = f"{label} {self.value}" if label else self.value
        return f"{label}: {self.reason}" if label else self.reason


class ManifestDefaults(BaseModel):
    """What a manifest falls back to when it names nothing: a small, explicit config object."""

    model_config = ConfigDict(frozen=True)

    audio_root: Path  # absolute; every audio path must lie inside it
    owner: str | None = None
    space: str | None = None
    model: str = DEFAULT_MODEL
    max_bytes: int = DEFAULT_MAX_BYTES
    # How preflight treats recordings (worker.derive): stereo without a channel, other formats.
    stereo: Literal["channel", "downmix"] = "channel"
    convert: bool = False
    voice_margin: float = DEFAULT_VOICE_MARGIN  # worker.voice_rule: refuse only clearly below

    @classmethod
    def from_settings(cls, settings: Settings) -> ManifestDefaults:
        return cls(
            audio_root=Path(os.path.abspath(settings.resolved_audio_root)),
            owner=settings.owner,
            space=settings.space,
            max_bytes=settings.max_manifest_bytes,
            stereo=settings.stereo,
            convert=settings.convert,
            voice_margin=settings.voice_margin,
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

    @property
    def channels(self) -> tuple[int | None, ...]:
        """The channel named for each file, None where none was (also for older models)."""
        return self.audio_channels or (None,) * len(self.audios)

    @property
    def key(self) -> str:
        """owner/space/identity/voiceprint: unique within a job (duplicates are rejected)."""
        return f"{self.owner}/{self.space}/{self.identity}/{self.voiceprint}"


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


class ParsedManifest(BaseModel):
    """A parsed manifest: runnable enrollments, rejected ones, and whole-file problems."""

    file: str
    kind: Kind | None = None
    enrollments: list[Enrollment] = Field(default_factory=list)
    rejected: list[RejectedEnrollment] = Field(default_factory=list)
    file_problems: list[Problem] = Field(default_factory=list)
    warnings: list[Problem] = Field(default_factory=list)
    csv_columns: list[str] | None = None  # a CSV's header, as written

    @property
    def problems(self) -> list[Problem]:
        """Every error: the file's first, then each rejected enrollment's, in manifest order."""
        out = list(self.file_problems)
        for rejected in sorted(self.rejected, key=lambda r: r.position):
            out.extend(rejected.problems)
        return out

    @property
    def ok(self) -> bool:
        return not self.file_problems and not self.rejected

    @property
    def total(self) -> int:
        return len(self.enrollments) + len(self.rejected)


ManifestItem = Enrollment | RejectedEnrollment


@dataclass
class ManifestStream:
    """A manifest read and checked as a file, its enrollments built only when iterated.

    What spoils the whole file is known at once (`file_problems`), and so is `total`. Each
    `items()` call starts over from the parsed document, so a job can walk it again at report
    time (for the failures CSV and the retry manifest) instead of keeping every enrollment.
    """

    file: str
    defaults: ManifestDefaults
    kind: Kind | None = None
    total: int = 0
    file_problems: list[Problem] = field(default_factory=list)
    csv_columns: list[str] | None = None  # a CSV's header, as written
    field_names: Mapping[str, str] = field(default_factory=dict)  # JSON name -> name shown
    generate: Callable[[_Builder], Iterator[ManifestItem]] | None = None

    def items(self) -> Iterator[ManifestItem]:
        """Every enrollment, valid or rejected, in manifest order (by `position`)."""
        return self._items(self._builder())

    def walk(self) -> tuple[Iterator[ManifestItem], list[Problem]]:
        """`items()`, and the warnings list the walk fills as it goes (a deprecated model…)."""
        builder = self._builder()
        return self._items(builder), builder.warnings

    def collect(self) -> ParsedManifest:
        """The whole manifest at once: enrollments, rejections, warnings."""
        builder = self._builder()
        good: list[Enrollment] = []
        bad: list[RejectedEnrollment] = []
        for item in self._items(builder):
            if isinstance(item, Enrollment):
                good.append(item)
            else:
                bad.append(item)
        return ParsedManifest(
            file=self.file,
            kind=self.kind,
            enrollments=good,
            rejected=bad,
            file_problems=self.file_problems,
            warnings=builder.warnings,
            csv_columns=self.csv_columns,
        )

    def _builder(self) -> _Builder:
        place_of = _csv_place if self.kind == "csv" else _json_place
        return _Builder(self.file, self.defaults, self.field_names, place_of)

    def _items(self, builder: _Builder) -> Iterator[ManifestItem]:
        if self.file_problems or self.generate is None:
            return iter(())
        return self.generate(builder)


# --- helpers -----------------------------------------------------------------------------------


def _json_place(position: int) -> str:
    return f"enrollments[{position}]"


def _csv_place(position: int) -> str:
    return f"line {position}"  # a CSV enrollment's position is its first line


def show(value: Any) -> str:
    """A value as a person should see it in a message: strings quoted, long ones shortened."""
    if isinstance(value, str):
        text = value if len(value) <= _VALUE_SHOWN_MAX else value[: _VALUE_SHOWN_MAX - 1] + "…"
        return safe_text(json.dumps(text, ensure_ascii=False))
    try:
        text = safe_text(json.dumps(value, ensure_ascii=False))
    except (TypeError, ValueError):
        text = safe_text(repr(value))
    return text if len(text) <= _VALUE_SHOWN_MAX else text[: _VALUE_SHOWN_MAX - 1] + "…"


def handle_problem(value: str) -> str | None:
    """Why `value` is not a valid handle (contract §1), or None."""
    if not value:
        return "must not be empty"
    if len(value) > HANDLE_MAX:
        return f"is {len(value)} characters; handles are at most {HANDLE_MAX}"
    if HANDLE_RE.match(value):
        return None
    if re.fullmatch(r"[a-z0-9-]+", value):
        return "hyphens may only join letters or digits (none at the ends, never two in a row)"
    return "handles are lowercase letters, digits and hyphens"


def alias_problem(value: str) -> str | None:
    if has_lone_surrogate(value):
        return NOT_UNICODE
    if not value:
        return f"must not be empty (aliases are 1–{ALIAS_MAX} characters; omit it or use null)"
    if len(value) > ALIAS_MAX:
        return f"is {len(value)} characters; aliases are 1–{ALIAS_MAX} characters"
    return None


def _lines_text(lines: Sequence[int]) -> str:
    """`line 4`, `lines 4-6` (consecutive) or `lines 4, 9, 12`."""
    if len(lines) == 1:
        return f"line {lines[0]}"
    if list(lines) == list(range(lines[0], lines[0] + len(lines))):
        return f"lines {lines[0]}-{lines[-1]}"
    return "lines " + ", ".join(str(n) for n in lines)


def _audio_path(raw: str, root: Path) -> tuple[Path, str] | str:
    """(absolute path, name relative to root) or the reason the path is refused. Lexical only."""
    if not raw.strip():
        return "must not be empty"
    if "\x00" in raw:
        return "contains a NUL character"
    if has_lone_surrogate(raw):
        return NOT_UNICODE
    root_n = os.path.normpath(root)
    absolute = os.path.isabs(raw)
    full = os.path.normpath(raw if absolute else os.path.join(root_n, raw))
    try:
        inside = os.path.commonpath([full, root_n]) == root_n
    except ValueError:
        inside = False
    if not inside:
        return "is outside the audio root" if absolute else "leads outside the audio root"
    if full == root_n:
        return "is the audio root itself, not a file"
    return Path(full), PurePosixPath(*Path(os.path.relpath(full, root_n)).parts).as_posix()


# --- the common builder ------------------------------------------------------------------------


@dataclass
class _AudioIn:
    raw: Any  # a path, or {"path": …, "channel": …}
    field: str  # "audios[1]" or "audio"
    place: str  # where to point the person: the enrollment's place, or the CSV row's line
    channel: Any = None  # the CSV `channel` cell, when the file has that column


def _channel_value(value: Any) -> int | str | None:
    """A channel number (0-based), None when not given, or the reason it is refused."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return "channel must be a whole number from 0 (the first channel)"
    return value


def _audio_entry(item: _AudioIn) -> tuple[str, int | None] | str:
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
    checked = _channel_value(channel)
    if isinstance(checked, str):
        return checked
    return raw, checked


@dataclass
class _Candidate:
    """One enrollment as written, before validation; `None` means "not given"."""

    source: str
    place: str
    position: int
    values: dict[str, Any]  # JSON names: identity, voiceprint, owner, space, model, …
    audios: list[_AudioIn]
    rows: tuple[dict[str, str], ...] = ()
    preset: list[Problem] = field(default_factory=list)  # found before validation
    audios_invalid: bool = False  # `audios` was given but is not a list (already reported)
    broken: bool = False  # not even an object: `preset` says why, nothing else to check


class _Builder:
    """Validates candidates into enrollments and collects problems for one file."""

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
        self.place_of = place_of or _json_place  # a position -> how a message names it
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

    def build(self, cand: _Candidate) -> Enrollment | RejectedEnrollment:
        problems = list(cand.preset)
        if cand.broken:
            return RejectedEnrollment(
                source=cand.source, position=cand.position, problems=tuple(problems)
            )
        v = cand.values
        place = cand.place

        def handle(name: str, fallback: str | None, missing: str) -> str | None:
            value = v.get(name)
            if value is None:
                value = fallback
            if value is None:
                problems.append(self.problem(place, name, None, missing, given=False))
                return None
            if not isinstance(value, str):
                problems.append(self.problem(place, name, value, "must be text"))
                return None
            reason = handle_problem(value)
            if reason:
                problems.append(self.problem(place, name, value, reason))
                return None
            return value

        owner = handle(
            "owner",
            self.defaults.owner,
            "is missing; name it in the manifest or set ENROLLER_OWNER",
        )
        space = handle(
            "space",
            self.defaults.space,
            "is missing; name it in the manifest or set ENROLLER_SPACE",
        )
        identity = handle("identity", None, "is missing")
        voiceprint = handle("voiceprint", DEFAULT_VOICEPRINT, "is missing")

        model = _model_text(v.get("model", self.defaults.model))
        if isinstance(model, tuple):
            problems.append(self.problem(place, "model", model[0], model[1]))
            model_ok: str | None = None
        else:
            model_ok = model
            reason = model_problem(model)
            if reason:
                problems.append(self.problem(place, "model", model, reason))
                model_ok = None
            elif (warning := model_warning(model)) and model not in self.warned_models:
                self.warned_models.add(model)
                self.warnings.append(
                    Problem(
                        file=self.file,
                        place=place,
                        field=self.names.get("model", "model"),
                        value=show(model),
                        reason=warning,
                        severity="warning",
                    )
                )

        min_checked = _min_audios(v.get("minAudios", 1))
        min_ok = min_checked if isinstance(min_checked, int) else None
        if isinstance(min_checked, str):
            problems.append(self.problem(place, "minAudios", v.get("minAudios"), min_checked))

        alias = v.get("alias")
        if alias is not None:
            if not isinstance(alias, str):
                problems.append(self.problem(place, "alias", alias, "must be text or null"))
            elif reason := alias_problem(alias):
                problems.append(self.problem(place, "alias", alias, reason))

        create = _bool_value(v.get("createIdentity", True))
        if create is None:
            problems.append(
                self.problem(
                    place, "createIdentity", v.get("createIdentity"), "must be true or false"
                )
            )

        paths: list[Path] = []
        names: list[str] = []
        fields: list[str] = []
        places: list[str] = []
        channels: list[int | None] = []
        first_seen: dict[tuple[Path, int | None], str] = {}
        for item in cand.audios:
            entry = _audio_entry(item)
            if isinstance(entry, str):
                problems.append(self.problem(item.place, item.field, item.raw, entry))
                continue
            raw, channel = entry
            resolved = _audio_path(raw, self.defaults.audio_root)
            if isinstance(resolved, str):
                problems.append(self.problem(item.place, item.field, raw, resolved))
                continue
            path, name = resolved
            where = item.field if item.place == place else item.place
            if (path, channel) in first_seen:
                problems.append(
                    self.problem(
                        item.place,
                        item.field,
                        raw,
                        f"listed twice (also {first_seen[path, channel]})",
                    )
                )
                continue
            first_seen[path, channel] = where
            paths.append(path)
            names.append(name)
            fields.append(self.names.get(item.field, item.field))
            places.append(item.place)
            channels.append(channel)
        if not cand.audios and not cand.audios_invalid:
            problems.append(self.problem(place, "audios", None, "none listed", given=False))
        elif cand.audios and min_ok is not None and len(cand.audios) < min_ok:
            n = len(cand.audios)
            problems.append(
                self.problem(
                    place,
                    "audios",
                    None,
                    f"{n} file{'' if n == 1 else 's'} listed but minAudios is {min_ok}",
                    given=False,
                )
            )

        complete = owner and space and identity and voiceprint and model_ok and min_ok
        if not problems and not (complete and create is not None):
            # Every missing value above adds a problem; reaching this is a parser bug, and it
            # rejects this enrollment rather than stopping the job.
            problems.append(self.problem(place, "", None, "could not be read (internal error)"))
        if problems:
            return RejectedEnrollment(
                source=cand.source,
                position=cand.position,
                owner=owner,
                space=space,
                identity=identity,
                voiceprint=voiceprint,
                problems=tuple(problems),
                rows=cand.rows,
            )
        return Enrollment(
            owner=owner,
            space=space,
            identity=identity,
            voiceprint=voiceprint,
            model=model_ok,
            min_audios=min_ok,
            alias=alias,
            create_identity=create,
            audios=tuple(paths),
            audio_names=tuple(names),
            audio_fields=tuple(fields),
            audio_places=tuple(places),
            # Kept only when some file names a channel: most manifests never do.
            audio_channels=tuple(channels) if any(c is not None for c in channels) else (),
            source=cand.source,
            position=cand.position,
            rows=cand.rows,
        )

    def build_each(self, candidates: Iterable[_Candidate]) -> Iterator[ManifestItem]:
        """Validate each candidate, then the rules across enrollments (first one wins).

        A generator: only the keys and audio paths already listed are remembered (as short
        strings), never the enrollments themselves.
        """
        seen_keys = KeyIndex()  # key -> position first listed (8-byte hashes: ~32 MB/million)
        audio_owner = KeyIndex(tagged=True)  # owner/space/path -> first position, its identity
        for cand in candidates:
            built = self.build(cand)
            if isinstance(built, RejectedEnrollment):
                yield built
                continue
            cross: list[Problem] = []
            first = seen_keys.get(built.key)
            if first is not None:
                cross.append(
                    self.problem(
                        cand.place,
                        "identity",
                        built.identity,
                        f"voiceprint {show(built.voiceprint)} is already listed at "
                        f"{self.place_of(first)}; a voiceprint may appear once per job",
                    )
                )
            # One channel of a call is one audio: the agent's channel may enroll the agent.
            audio_keys = [
                f"{built.owner}/{built.space}/{path}" + ("" if ch is None else f"#{ch}")
                for path, ch in zip(built.audios, built.channels, strict=True)
            ]
            for audio_key, name in zip(audio_keys, built.audio_names, strict=True):
                other = audio_owner.get(audio_key)
                if other is not None and not audio_owner.tag_matches(audio_key, built.identity):
                    cross.append(
                        self.problem(
                            cand.place,
                            self.names.get("audios", "audios"),
                            name,
                            f"also listed for another identity at {self.place_of(other)}; "
                            "an audio can belong to one identity only",
                        )
                    )
            if cross:
                yield RejectedEnrollment(
                    source=built.source,
                    position=built.position,
                    owner=built.owner,
                    space=built.space,
                    identity=built.identity,
                    voiceprint=built.voiceprint,
                    problems=tuple(cross),
                    rows=built.rows,
                )
                continue
            seen_keys.setdefault(built.key, built.position)
            for audio_key in audio_keys:
                audio_owner.setdefault(audio_key, built.position, tag=built.identity)
            yield built


def _model_text(value: Any) -> str | tuple[Any, str]:
    """The model as `handle/version`, or (value shown, reason). Accepts both vendor forms."""
    if isinstance(value, Mapping):
        keys = set(value)
        if keys != {"handle", "version"}:
            return value, 'must be "handle/version" or {"handle": …, "version": …}'
        handle, version = value["handle"], value["version"]
        if not isinstance(handle, str) or not isinstance(version, str):
            return value, "handle and version must be text"
        text = f"{handle}/{version}"
    elif isinstance(value, str):
        text = value
    else:
        return value, 'must be "handle/version" or {"handle": …, "version": …}'
    parts = text.split("/")
    if len(parts) != 2 or not all(HANDLE_RE.match(p) for p in parts):
        return value, 'must be "handle/version", e.g. "phone/v1"'
    return text


def _int_value(value: Any) -> int | str:
    if isinstance(value, bool):
        return "must be a whole number"
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    return "must be a whole number"


def _min_audios(value: Any) -> int | str:
    """minAudios as an int in 1–20 (contract §3), or the reason it is not."""
    n = _int_value(value)
    if isinstance(n, int) and not MIN_AUDIOS_MIN <= n <= MIN_AUDIOS_MAX:
        return f"must be between {MIN_AUDIOS_MIN} and {MIN_AUDIOS_MAX}"
    return n


def _bool_value(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    return None


# --- decoding ----------------------------------------------------------------------------------


def _decode(data: bytes, file: str, max_bytes: int) -> str | Problem:
    """The manifest's text, or the problem that spoils the whole file."""
    if len(data) > max_bytes:
        return Problem(
            file=file,
            reason=f"{len(data) / 2**20:.1f} MiB is over the {max_bytes / 2**20:g} MiB manifest "
            "limit (ENROLLER_MAX_MANIFEST_BYTES)",
        )
    try:
        text = data.decode("utf-8-sig")  # tolerate the BOM that spreadsheet exports add
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return Problem(
            file=file,
            place=f"line {line}",
            reason=f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save the file as UTF-8",
        )
    if not text.strip():
        return Problem(file=file, reason="is empty")
    return text


def parse_manifest(data: bytes, file: str, defaults: ManifestDefaults) -> ParsedManifest:
    """Parse a manifest of either format; CSV when the name ends in `.csv`, else by content."""
    return stream_manifest(data, file, defaults).collect()


def stream_manifest(data: bytes, file: str, defaults: ManifestDefaults) -> ManifestStream:
    """`parse_manifest`, with the enrollments built only as they are iterated."""
    text = _decode(data, file, defaults.max_bytes)
    if isinstance(text, Problem):
        return ManifestStream(file=file, defaults=defaults, file_problems=[text])
    if file.lower().endswith(".csv"):
        return stream_csv(text, file, defaults)
    if file.lower().endswith(".json") or text.lstrip().startswith(("{", "[")):
        return stream_json(text, file, defaults)
    return stream_csv(text, file, defaults)


def read_manifest(
    path: Path, defaults: ManifestDefaults, name: str | None = None
) -> ParsedManifest:
    """Read and parse a manifest file (blocking I/O). `name` is how messages call the file."""
    return open_manifest(path, defaults, name).collect()


def open_manifest(
    path: Path, defaults: ManifestDefaults, name: str | None = None
) -> ManifestStream:
    """`read_manifest`, with the enrollments built only as they are iterated.

    The size limit is checked before reading, so a huge file is never loaded.
    """
    shown = name if name is not None else str(path)

    def broken(reason: str) -> ManifestStream:
        problem = Problem(file=shown, reason=reason)
        return ManifestStream(file=shown, defaults=defaults, file_problems=[problem])

    try:
        with open_regular(path) as fh:  # a FIFO or device swapped in never blocks the read
            size = os.fstat(fh.fileno()).st_size
            if size > defaults.max_bytes:
                return broken(
                    f"{size / 2**20:.1f} MiB is over the {defaults.max_bytes / 2**20:g} MiB "
                    "manifest limit (ENROLLER_MAX_MANIFEST_BYTES)"
                )
            if size >= STREAM_JSON_MIN_BYTES and _looks_like_json(fh, shown):
                return _stream_json_file(path, fh, shown, defaults)
            data = fh.read(defaults.max_bytes + 1)
    except IsADirectoryError:
        return broken("is a directory")
    except NotRegularFile as exc:
        return broken(f"is {exc.strerror}")
    except OSError as exc:
        return broken(
            "does not exist"
            if isinstance(exc, FileNotFoundError)
            else (f"cannot be read ({exc.strerror or exc})")
        )
    return stream_manifest(data, shown, defaults)


# --- JSON --------------------------------------------------------------------------------------

# From this size on, a JSON manifest is read as a stream (worker/jsonscan.py), never whole.
# Smaller files are parsed whole, for exact error positions (line and column) and tolerance of
# NaN, which the streaming parser does not give.
STREAM_JSON_MIN_BYTES = 4 * 1024 * 1024


def _looks_like_json(fh: IO[bytes], file: str) -> bool:
    """JSON by name, or (not named .csv) by its first non-blank byte; leaves `fh` at 0."""
    if file.lower().endswith(".csv"):
        return False
    if file.lower().endswith(".json"):
        return True
    head = fh.read(64).removeprefix(b"\xef\xbb\xbf").lstrip()
    fh.seek(0)
    return head[:1] in (b"{", b"[")


def _stream_json_file(
    path: Path, fh: IO[bytes], file: str, defaults: ManifestDefaults
) -> ManifestStream:
    """A large JSON job as a stream: defaults from a first pass, enrollments from a second."""

    def broken(reason: str) -> ManifestStream:
        problem = Problem(file=file, reason=reason)
        return ManifestStream(file=file, defaults=defaults, file_problems=[problem])

    try:
        scan = scan_job(fh)
    except JsonScanError as exc:
        return broken(str(exc))
    if scan.top_level != "object":
        return broken('must be a JSON object: a job {"enrollments": [...]} or one enrollment')
    if "enrollments" not in scan.keys:
        fh.seek(0)  # one enrollment of this size is odd, but it is read the ordinary way
        return stream_manifest(fh.read(defaults.max_bytes + 1), file, defaults)
    doc_defaults = {k: v for k, v in scan.scalars.items() if k in _JOB_KEYS}
    for key in set(scan.keys) & (_JOB_KEYS - {"enrollments"}) - set(doc_defaults):
        doc_defaults[key] = _NOT_SCALAR  # a list or object where a default belongs

    def items() -> Iterator[Any]:
        with open_regular(path) as again:
            yield from iter_enrollments(again)

    return _stream_job(
        keys=scan.keys,
        job_defaults=doc_defaults,
        enrollments_kind=scan.enrollments or "missing",
        count=scan.count,
        items=items,
        file=file,
        defaults=defaults,
    )


class _NotScalar:
    """A default given as a list or object: shown as such, refused by the checks."""

    def __repr__(self) -> str:
        return "a list or object"


_NOT_SCALAR = _NotScalar()

_JSON_NAMES: dict[str, str] = {}


def parse_json(text: str, file: str, defaults: ManifestDefaults) -> ParsedManifest:
    """Parse a JSON job (`{"enrollments": [...]}`) or a single enrollment (`{"identity": ...}`)."""
    return stream_json(text, file, defaults).collect()


def stream_json(text: str, file: str, defaults: ManifestDefaults) -> ManifestStream:
    """`parse_json`, with the enrollments built only as they are iterated.

    The decoded document is kept (about 400 bytes per enrollment): it is what `items()` walks.
    """

    def broken(problem: Problem, kind: Kind | None = None) -> ManifestStream:
        return ManifestStream(file=file, defaults=defaults, kind=kind, file_problems=[problem])

    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        return broken(
            Problem(
                file=file,
                place=f"line {exc.lineno} column {exc.colno}",
                reason=f"not valid JSON: {exc.msg}",
            )
        )
    except RecursionError:
        return broken(Problem(file=file, reason="not valid JSON: nested too deeply"))
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        return broken(Problem(file=file, reason=f"not valid JSON: {exc}"))
    if not isinstance(doc, dict):
        return broken(
            Problem(
                file=file,
                reason='must be a JSON object: a job {"enrollments": [...]} or one enrollment',
            )
        )
    if "enrollments" in doc:
        return _stream_job_document(doc, file, defaults)

    unknown = sorted(set(doc) - _ENROLLMENT_KEYS - _IGNORED_KEYS)

    def generate(builder: _Builder) -> Iterator[ManifestItem]:
        cand = _json_candidate(file, doc, {}, "enrollment", "", 0)
        cand.preset.extend(
            Problem(file=file, field=key, reason=_unknown_reason(_ENROLLMENT_KEYS))
            for key in unknown
        )
        return builder.build_each([cand])

    return ManifestStream(
        file=file,
        defaults=defaults,
        kind="single",
        total=1,
        field_names=_JSON_NAMES,
        generate=generate,
    )


def _unknown_reason(known: Iterable[str]) -> str:
    return "unknown field; known fields are " + ", ".join(sorted(known)) + ' (and "comment")'


def _stream_job_document(
    doc: dict[str, Any], file: str, defaults: ManifestDefaults
) -> ManifestStream:
    """A JSON job already parsed whole (a small file)."""
    enrollments = doc["enrollments"]
    kind = "list" if isinstance(enrollments, list) else "other"
    return _stream_job(
        keys=list(doc),
        job_defaults={k: doc[k] for k in _JOB_DEFAULT_KEYS if k in doc},
        enrollments_kind=kind,
        count=len(enrollments) if isinstance(enrollments, list) else 0,
        items=lambda: iter(enrollments if isinstance(enrollments, list) else ()),
        file=file,
        defaults=defaults,
    )


_JOB_DEFAULT_KEYS = ("owner", "space", "model", "minAudios", "createIdentity")


def _stream_job(
    *,
    keys: Iterable[str],
    job_defaults: dict[str, Any],
    enrollments_kind: str,
    count: int,
    items: Callable[[], Iterable[Any]],
    file: str,
    defaults: ManifestDefaults,
) -> ManifestStream:
    """A JSON job from its top-level keys and defaults and a source of its enrollments.

    `items()` yields the enrollments afresh at each call: from the parsed document of a small
    file, or from a new streaming pass over a large one.
    """
    file_problems = [
        Problem(file=file, field=key, reason=_unknown_reason(_JOB_KEYS))
        for key in sorted(set(keys) - _JOB_KEYS - _IGNORED_KEYS)
    ]
    job_defaults = {k: job_defaults[k] for k in _JOB_DEFAULT_KEYS if k in job_defaults}
    # Job-level defaults are checked once, as file problems: a bad default spoils every row.
    file_problems.extend(_check_job_defaults(job_defaults, file))
    if enrollments_kind != "list":
        file_problems.append(
            Problem(file=file, field="enrollments", reason="must be a list of enrollments")
        )
    elif not count:
        file_problems.append(Problem(file=file, field="enrollments", reason="no enrollments"))
    if file_problems:
        return ManifestStream(file=file, defaults=defaults, kind="job", file_problems=file_problems)

    def candidates() -> Iterator[_Candidate]:
        for i, item in enumerate(items()):
            place = f"enrollments[{i}]"
            if not isinstance(item, dict):
                cand = _Candidate(
                    source=place, place=place, position=i, values={}, audios=[], broken=True
                )
                cand.preset.append(
                    Problem(
                        file=file, place=place, value=show(item), reason="must be a JSON object"
                    )
                )
                yield cand
                continue
            cand = _json_candidate(file, item, job_defaults, place, place, i)
            for key in sorted(set(item) - _ENROLLMENT_KEYS - _IGNORED_KEYS):
                cand.preset.append(
                    Problem(
                        file=file, place=place, field=key, reason=_unknown_reason(_ENROLLMENT_KEYS)
                    )
                )
            yield cand

    return ManifestStream(
        file=file,
        defaults=defaults,
        kind="job",
        total=count,
        field_names=_JSON_NAMES,
        generate=lambda builder: builder.build_each(candidates()),
    )


def _check_job_defaults(values: dict[str, Any], file: str) -> list[Problem]:
    problems: list[Problem] = []
    for name in ("owner", "space"):
        if name in values:
            value = values[name]
            reason = handle_problem(value) if isinstance(value, str) else "must be text"
            if reason:
                problems.append(Problem(file=file, field=name, value=show(value), reason=reason))
    if "model" in values:
        model = _model_text(values["model"])
        if isinstance(model, tuple):
            problems.append(
                Problem(file=file, field="model", value=show(model[0]), reason=model[1])
            )
        elif reason := model_problem(model):
            problems.append(Problem(file=file, field="model", value=show(model), reason=reason))
    if "minAudios" in values and isinstance(reason := _min_audios(values["minAudios"]), str):
        problems.append(
            Problem(file=file, field="minAudios", value=show(values["minAudios"]), reason=reason)
        )
    if "createIdentity" in values and not isinstance(values["createIdentity"], bool):
        problems.append(
            Problem(
                file=file,
                field="createIdentity",
                value=show(values["createIdentity"]),
                reason="must be true or false",
            )
        )
    return problems


def _json_candidate(
    file: str,
    item: dict[str, Any],
    job_defaults: dict[str, Any],
    source: str,
    place: str,
    position: int,
) -> _Candidate:
    values = dict(job_defaults)
    values.update({k: item[k] for k in _ENROLLMENT_KEYS - {"audios"} if k in item})
    cand = _Candidate(source=source, place=place, position=position, values=values, audios=[])
    audios_raw = item.get("audios")
    if isinstance(audios_raw, list):
        cand.audios = [_AudioIn(raw, f"audios[{j}]", place) for j, raw in enumerate(audios_raw)]
    elif audios_raw is not None:
        # A lone string is a common slip; say so rather than guessing what was meant.
        cand.audios_invalid = True
        cand.preset.append(
            Problem(
                file=file,
                place=place,
                field="audios",
                value=show(audios_raw),
                reason="must be a list of paths",
            )
        )
    return cand


# --- CSV ---------------------------------------------------------------------------------------


def _norm_column(name: str) -> str:
    return re.sub(r"[\s_-]", "", name).lower()


_CSV_CANONICAL = {_norm_column(c): c for c in (*CSV_REQUIRED, *CSV_OPTIONAL)}
_CSV_MERGED = ("model", "minAudios", "alias", "createIdentity")  # must agree across a group


@dataclass
class _Row:
    line: int
    values: dict[str, str]  # JSON-style name -> stripped, non-blank cell
    original: dict[str, str]  # header as written -> cell as written


def parse_csv(text: str, file: str, defaults: ManifestDefaults) -> ParsedManifest:
    """Parse a CSV manifest: a header row, then one audio per row.

    Rows with the same (owner, space, identity, voiceprint) form one enrollment; its place is
    the set of their lines. Unknown columns are kept (the failures CSV repeats them) and
    otherwise ignored, since exports often carry the operator's own columns.
    """
    return stream_csv(text, file, defaults).collect()


def stream_csv(text: str, file: str, defaults: ManifestDefaults) -> ManifestStream:
    """`parse_csv`, with the enrollments built only as they are iterated.

    The rows are read (and grouped) at once, since one enrollment's rows may be far apart.
    """

    def broken(problems: list[Problem], header: list[str] | None) -> ManifestStream:
        return ManifestStream(
            file=file, defaults=defaults, kind="csv", file_problems=problems, csv_columns=header
        )

    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    columns: dict[str, int] = {}
    rows: list[_Row] = []
    rejected_rows: list[RejectedEnrollment] = []
    prev_line = 0
    try:
        for cells in reader:
            line = prev_line + 1
            prev_line = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = cells
                problems = _csv_header(cells, columns, file, line)
                if problems:
                    return broken(problems, header)
                continue
            original = {h: (cells[i] if i < len(cells) else "") for i, h in enumerate(header)}
            if len(cells) > len(header) and any(c.strip() for c in cells[len(header) :]):
                rejected_rows.append(
                    RejectedEnrollment(
                        source=f"line {line}",
                        position=line,
                        problems=(
                            Problem(
                                file=file,
                                place=f"line {line}",
                                reason=f"has {len(cells)} cells but the header has "
                                f"{len(header)}; quote cells that contain commas",
                            ),
                        ),
                        rows=(original,),
                    )
                )
                continue
            values = {
                name: cells[i].strip()
                for name, i in columns.items()
                if i < len(cells) and cells[i].strip()
            }
            rows.append(_Row(line=line, values=values, original=original))
    except csv.Error as exc:
        problem = Problem(
            file=file, place=f"line {reader.line_num}", reason=f"not valid CSV: {exc}"
        )
        return broken([problem], header)
    if header is None:  # only blank rows or empty cells: a spreadsheet export of nothing
        problem = Problem(
            file=file, reason="is empty: no header row (identity, audio) and no enrollments"
        )
        return broken([problem], None)
    if not rows and not rejected_rows:
        problem = Problem(file=file, reason="no enrollments (the file has only a header row)")
        return broken([problem], header)

    groups: dict[tuple[Any, ...], list[_Row]] = {}
    for row in rows:
        identity = row.values.get("identity")
        key: tuple[Any, ...] = (
            row.values.get("owner", defaults.owner),
            row.values.get("space", defaults.space),
            identity,
            row.values.get("voiceprint", DEFAULT_VOICEPRINT),
        )
        if identity is None:
            key = ("<no identity>", row.line)  # cannot be grouped: each stands alone
        groups.setdefault(key, []).append(row)

    names = {"audios": header[columns["audio"]]}
    names.update({name: header[i] for name, i in columns.items()})

    def candidates() -> Iterator[_Candidate]:
        for group in groups.values():
            lines = [r.line for r in group]
            place = _lines_text(lines)
            first = group[0].values
            values: dict[str, Any] = {
                k: first[k] for k in ("owner", "space", "identity", "voiceprint") if k in first
            }
            cand = _Candidate(
                source=place,
                place=place,
                position=lines[0],
                values=values,
                audios=[
                    _AudioIn(
                        r.values.get("audio", ""),
                        "audio",
                        f"line {r.line}",
                        r.values.get("channel"),
                    )
                    for r in group
                ],
                rows=tuple(r.original for r in group),
            )
            for name in _CSV_MERGED:
                seen: dict[str, int] = {}
                for r in group:
                    if name in r.values:
                        seen.setdefault(r.values[name], r.line)
                if len(seen) > 1:
                    listed = ", ".join(f"{show(v)} on line {n}" for v, n in seen.items())
                    cand.preset.append(
                        Problem(
                            file=file,
                            place=place,
                            field=names.get(name, name),
                            reason=f"rows of one enrollment disagree: {listed}",
                        )
                    )
                elif seen:
                    values[name] = next(iter(seen))
            yield cand

    def generate(builder: _Builder) -> Iterator[ManifestItem]:
        # Groups come in the order of their first line; merged with the rows rejected alone.
        built = builder.build_each(candidates())
        return heapq.merge(built, rejected_rows, key=lambda item: item.position)

    return ManifestStream(
        file=file,
        defaults=defaults,
        kind="csv",
        total=len(groups) + len(rejected_rows),
        csv_columns=header,
        field_names=names,
        generate=generate,
    )


def _csv_header(cells: list[str], columns: dict[str, int], file: str, line: int) -> list[Problem]:
    """Map the header's known columns into `columns`; problems that spoil the whole file."""
    problems: list[Problem] = []
    for i, cell in enumerate(cells):
        name = _CSV_CANONICAL.get(_norm_column(cell))
        if name is None:
            continue
        if name in columns:
            problems.append(
                Problem(
                    file=file,
                    place=f"line {line}",
                    field=cell.strip(),
                    reason=f"column appears twice (also column {columns[name] + 1})",
                )
            )
            continue
        columns[name] = i
    missing = [c for c in CSV_REQUIRED if c not in columns]
    if missing:
        hint = ""
        if len(cells) == 1 and (";" in cells[0] or "\t" in cells[0]):
            hint = "; the header looks separated by ';' or tabs: use commas"
        listed = ", ".join(f'"{c}"' for c in missing)
        problems.append(
            Problem(
                file=file,
                place=f"line {line}",
                reason=f"missing column{'s' if len(missing) > 1 else ''} {listed} "
                f"(required: {', '.join(CSV_REQUIRED)}; optional: {', '.join(CSV_OPTIONAL)})"
                + hint,
            )
        )
    return problems


# --- writing a retry manifest ------------------------------------------------------------------


def _relative(path: Path, audio_root: Path) -> str:
    root = os.path.normpath(audio_root)
    full = os.path.normpath(path)
    try:
        inside = os.path.commonpath([full, root]) == root
    except ValueError:
        inside = False
    if not inside:
        return full  # cannot happen for a parsed enrollment; keep the path usable anyway
    return PurePosixPath(*Path(os.path.relpath(full, root)).parts).as_posix()


def enrollment_json(enrollment: Enrollment, audio_root: Path) -> dict[str, Any]:
    """One enrollment in the JSON job format, every value explicit (no reliance on defaults)."""
    out: dict[str, Any] = {
        "owner": enrollment.owner,
        "space": enrollment.space,
        "identity": enrollment.identity,
        "voiceprint": enrollment.voiceprint,
        "model": enrollment.model,
        "minAudios": enrollment.min_audios,
    }
    if enrollment.alias is not None:
        out["alias"] = enrollment.alias
    out["createIdentity"] = enrollment.create_identity
    out["audios"] = [
        _relative(p, audio_root)
        if ch is None
        else {"path": _relative(p, audio_root), "channel": ch}
        for p, ch in zip(enrollment.audios, enrollment.channels, strict=True)
    ]
    return out


def retry_manifest_chunks(
    enrollments: Iterable[Enrollment], audio_root: Path, comment: str | None = None
) -> Iterator[str]:
    """A JSON job manifest of `enrollments`, as text chunks (memory stays flat for any count).

    Every value is written out, so the file means the same under another worker's defaults;
    audio paths are relative to `audio_root`, so it can be dropped back into `inbox/`.
    """
    yield "{\n"
    if comment is not None:
        yield f'  "comment": {json.dumps(comment, ensure_ascii=False)},\n'
    yield '  "enrollments": ['
    first = True
    for enrollment in enrollments:
        body = json.dumps(enrollment_json(enrollment, audio_root), ensure_ascii=False)
        yield ("\n    " if first else ",\n    ") + body
        first = False
    yield "]\n}\n" if first else "\n  ]\n}\n"


def retry_manifest_bytes(
    enrollments: Iterable[Enrollment], audio_root: Path, comment: str | None = None
) -> bytes:
    return encode_text("".join(retry_manifest_chunks(enrollments, audio_root, comment)))
