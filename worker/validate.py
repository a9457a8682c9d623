"""Preflight of parsed manifests, and `enroller validate`: everything short of an API call.

Owns: turning per-file audio results (`worker.audio`) into per-enrollment problems (an
enrollment with any bad file is invalid, the others are unaffected), the validation result
models that `--json` prints, and their one-line-per-problem text form. The engine calls
`preflight_enrollment` (in a worker thread: it is blocking I/O) on each enrollment that
`worker.manifest` returned; `enroller validate` runs the same functions over whole files.

It never makes a network call and never moves or writes queue files.
"""

from __future__ import annotations

import os
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

from pydantic import BaseModel, ConfigDict, Field, computed_field

from worker.audio import MODELS, AudioFacts, AudioUnreadable, inspect_audio, requirement_problems
from worker.derive import Derivation, StereoMode, plan_derivation
from worker.manifest import (
    Enrollment,
    ManifestDefaults,
    ManifestStream,
    ParsedManifest,
    Problem,
    open_manifest,
    read_manifest,
    show,
)
from worker.queue_rules import NameKind, classify_name
from worker.voice_rule import (
    DEFAULT_VOICE_MARGIN,
    LocalVoice,
    VoiceVerdict,
    near_warning,
    too_little_reason,
    voice_verdict,
)

# Files the worker itself writes next to manifests; never manifests themselves.
_OUTPUT_SUFFIXES = (".error.json", ".report.json", ".progress.json")

# What `inspect_audio` learned about a path: facts, or the reason it could not be read.
AudioCache = dict[Path, AudioFacts | str]
# How many paths a streamed validation remembers (files shared by several enrollments are
# usually listed close together): its memory stays flat for a manifest of any length.
STREAM_CACHE_PATHS = 10_000


class BoundedCache(OrderedDict[Path, "AudioFacts | str"]):
    """An `AudioCache` that forgets its oldest path beyond `limit`."""

    def __init__(self, limit: int = STREAM_CACHE_PATHS) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: Path, value: AudioFacts | str) -> None:
        super().__setitem__(key, value)
        if len(self) > self.limit:
            self.popitem(last=False)


class EnrollmentPreflight(BaseModel):
    """One enrollment after local preflight: the facts of each file, or why it cannot run."""

    model_config = ConfigDict(frozen=True)

    enrollment: Enrollment
    facts: tuple[AudioFacts, ...] = ()  # one per audio, in manifest order, when all are good
    # Per audio, what is done to it before upload (a channel, a mix, a conversion), or None.
    derivations: tuple[Derivation | None, ...] = ()
    # Per audio that passed, its voice as measured locally (worker.voice), for the report.
    voice: tuple[LocalVoice, ...] = ()
    problems: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()  # e.g. voice near the model's rule: uploaded anyway

    @property
    def ok(self) -> bool:
        return not self.problems


def _inspect(path: Path, audio_root: Path, cache: AudioCache | None) -> AudioFacts | str:
    if cache is not None and path in cache:
        return cache[path]
    try:
        result: AudioFacts | str = inspect_audio(path, audio_root)
    except AudioUnreadable as exc:
        result = str(exc)
    if cache is not None:
        cache[path] = result
    return result


def audio_problem(enrollment: Enrollment, i: int, file: str, reason: str) -> Problem:
    """A problem with the `i`-th audio of `enrollment`, located where the manifest names it."""
    field = enrollment.audio_fields[i] if enrollment.audio_fields else f"audios[{i}]"
    place = enrollment.audio_places[i] if enrollment.audio_places else enrollment.source
    name = show(enrollment.audio_names[i])
    return Problem(file=file, place=place, field=field, value=name, reason=reason)


def preflight_enrollment(
    enrollment: Enrollment,
    audio_root: Path,
    file: str,
    cache: AudioCache | None = None,
    stereo: StereoMode = "channel",
    convert: bool = False,
    voice_margin: float = DEFAULT_VOICE_MARGIN,
) -> EnrollmentPreflight:
    """Check every audio file of one enrollment against its model; blocking I/O.

    `file` names the manifest in messages. `cache` lets a caller that checks many enrollments
    read and hash a file shared by several voiceprints only once. `stereo` and `convert` say
    what may be derived from a file (worker.derive): a mix of a stereo file, a conversion.
    Each file that passes is measured for voice (`voice_check`): clearly too little is a
    problem, a little short (within `voice_margin`) a warning, and it is uploaded anyway.
    """
    problems: list[Problem] = []
    warnings: list[Problem] = []
    voices: list[LocalVoice] = []
    facts: list[AudioFacts] = []
    derivations: list[Derivation | None] = []
    first_by_sha: dict[str, str] = {}
    channels = enrollment.channels
    for i, (path, name) in enumerate(zip(enrollment.audios, enrollment.audio_names, strict=True)):

        def problem(reason: str, i: int = i) -> None:
            problems.append(audio_problem(enrollment, i, file, reason))

        found = _inspect(path, audio_root, cache)
        if isinstance(found, str):
            problem(found)
            continue
        derivation = plan_derivation(
            sha256=found.sha256,
            container=found.format,
            codec=found.codec,
            channels=found.channels,
            channel=channels[i],
            stereo=stereo,
            convert=convert,
        )
        converted = isinstance(derivation, Derivation) and derivation.converted
        reasons = requirement_problems(
            found, enrollment.model, enrollment.min_audios, converted=converted
        )
        if isinstance(derivation, str):
            reasons.insert(0, derivation)
        for reason in reasons:
            problem(reason)
        # Two names, one content: the server would hold one audio, the voiceprint one less.
        # (Two channels of one call are two contents.)
        content = found.sha256 if channels[i] is None else f"{found.sha256}#{channels[i]}"
        if content in first_by_sha:
            problem(f"has the same content as {first_by_sha[content]}")
            continue
        first_by_sha[content] = show(name)
        if not reasons:
            voice = voice_check(found, channels[i], enrollment, name, voice_margin)
            if isinstance(voice, str):
                problem(voice)
                continue
            if voice is not None:
                voices.append(voice)
                if voice.verdict is VoiceVerdict.NEAR:
                    warning = near_warning(voice.voice_s, voice.needed_s, voice_margin)
                    base = audio_problem(enrollment, i, file, warning)
                    warnings.append(base.model_copy(update={"severity": "warning"}))
            facts.append(found)
            derivations.append(derivation if isinstance(derivation, Derivation) else None)
    if problems:
        return EnrollmentPreflight(enrollment=enrollment, problems=tuple(problems))
    return EnrollmentPreflight(
        enrollment=enrollment,
        facts=tuple(facts),
        derivations=tuple(derivations),
        voice=tuple(voices),
        warnings=tuple(warnings),
    )


def voice_check(
    facts: AudioFacts, channel: int | None, enrollment: Enrollment, name: str, margin: float
) -> LocalVoice | str | None:
    """The file's voice measured locally and judged (`worker.voice_rule`); blocking.

    A reason (str) when it is clearly too little; None when the model is unknown (reported
    once per enrollment elsewhere) or the file was not measured (too long for any model).
    """
    req = MODELS.get(enrollment.model)
    if req is None:
        return None
    if facts.voice is None:
        return None
    needed = req.min_voice_per_audio_s(enrollment.min_audios)
    voice_s = facts.voice.of(channel)
    verdict = voice_verdict(voice_s, needed, margin)
    if verdict is VoiceVerdict.TOO_LITTLE:
        return too_little_reason(voice_s, needed, enrollment.model, enrollment.min_audios, margin)
    return LocalVoice(audio=name, voice_s=round(voice_s, 3), needed_s=needed, verdict=verdict)


# --- results of `enroller validate` ------------------------------------------------------------


class FileResult(BaseModel):
    """What `validate` found in one manifest file."""

    file: str
    kind: str | None = None  # job, single, csv; None when the file could not be parsed
    enrollments: int = 0
    valid: int = 0
    invalid: int = 0
    audio_files: int = 0
    audio_seconds: float = 0.0
    errors: list[Problem] = Field(default_factory=list)
    warnings: list[Problem] = Field(default_factory=list)
    # Problems found: the length of `errors`, or, when they were printed as found instead of
    # kept (a streamed validation), how many were printed.
    problem_count: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not self.errors and not self.problem_count

    def summary(self) -> str:
        """One line a person reads after the file's problems."""
        n = max(len(self.errors), self.problem_count)
        plural = "s" if n != 1 else ""
        if self.ok:
            extra = f", {len(self.warnings)} warning(s)" if self.warnings else ""
            return (
                f"{self.file}: ok: {_count(self.enrollments, 'enrollment')}, "
                f"{_count(self.audio_files, 'audio file')}, {self.audio_seconds:.1f} s of audio"
                f"{extra}"
            )
        if self.kind is None or not self.enrollments:
            return f"{self.file}: rejected: the file cannot be used ({n} problem{plural})"
        return (
            f"{self.file}: {self.invalid} of {_count(self.enrollments, 'enrollment')} invalid "
            f"({n} problem{plural}); {self.valid} valid"
        )


class ValidationResult(BaseModel):
    """The outcome of `enroller validate PATH…`, as `--json` prints it."""

    audio_root: str
    files: list[FileResult] = Field(default_factory=list)
    errors: list[Problem] = Field(default_factory=list)  # about the arguments, not a file

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not self.errors and all(f.ok for f in self.files)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def is_manifest_name(name: str) -> bool:
    """Whether a file in a folder is a manifest, by the queue's own naming rule."""
    return classify_name(name) is NameKind.CANDIDATE and not name.lower().endswith(_OUTPUT_SUFFIXES)


def manifest_paths(args: Sequence[str]) -> tuple[list[tuple[Path, str]], list[Problem]]:
    """Expand PATH arguments: files as given, folders to their manifests (not recursive).

    Returns (path, name shown) pairs and problems with the arguments themselves.
    """
    found: list[tuple[Path, str]] = []
    problems: list[Problem] = []
    for arg in args:
        path = Path(arg)
        if path.is_dir():
            try:
                names = sorted(e.name for e in os.scandir(path) if e.is_file())
            except OSError as exc:
                problems.append(Problem(file=arg, reason=f"cannot be listed ({exc.strerror})"))
                continue
            chosen = [n for n in names if is_manifest_name(n)]
            if not chosen:
                problems.append(
                    Problem(file=arg, reason="folder holds no manifests (*.json, *.csv)")
                )
            found.extend((path / n, str(path / n)) for n in chosen)
        elif path.exists() or path.is_symlink():
            found.append((path, arg))
        else:
            problems.append(Problem(file=arg, reason="no such file or folder"))
    return found, problems


def check_manifest(
    parsed: ParsedManifest,
    audio_root: Path,
    cache: AudioCache | None = None,
    stereo: StereoMode = "channel",
    convert: bool = False,
    voice_margin: float = DEFAULT_VOICE_MARGIN,
) -> tuple[list[EnrollmentPreflight], FileResult]:
    """Preflight every enrollment of a parsed manifest; the preflights and the file's result."""
    cache = {} if cache is None else cache
    result = FileResult(
        file=parsed.file,
        kind=parsed.kind,
        enrollments=parsed.total,
        invalid=len(parsed.rejected),
        warnings=list(parsed.warnings),
    )
    checked: list[EnrollmentPreflight] = []
    by_position: list[tuple[int, list[Problem]]] = [
        (r.position, list(r.problems)) for r in parsed.rejected
    ]
    for enrollment in parsed.enrollments:
        pre = preflight_enrollment(
            enrollment,
            audio_root,
            parsed.file,
            cache,
            stereo=stereo,
            convert=convert,
            voice_margin=voice_margin,
        )
        checked.append(pre)
        if pre.ok:
            result.warnings.extend(pre.warnings)
            result.valid += 1
            result.audio_files += len(pre.facts)
            result.audio_seconds += sum(f.duration for f in pre.facts)
        else:
            result.invalid += 1
            by_position.append((enrollment.position, list(pre.problems)))
    result.errors = list(parsed.file_problems)
    for _, problems in sorted(by_position, key=lambda item: item[0]):
        result.errors.extend(problems)
    result.audio_seconds = round(result.audio_seconds, 3)
    return checked, result


def check_stream(
    stream: ManifestStream,
    audio_root: Path,
    emit: Callable[[Problem], None],
    cache: AudioCache | None = None,
    stereo: StereoMode = "channel",
    convert: bool = False,
) -> FileResult:
    """Preflight a manifest enrollment by enrollment, handing each problem to `emit` at once.

    Nothing is kept per enrollment (counts only), so a million rows, even a million bad ones,
    cost the memory of one: what `enroller validate` prints as it goes.
    """
    cache = BoundedCache() if cache is None else cache
    result = FileResult(file=stream.file, kind=stream.kind, enrollments=stream.total)

    def problem(found: Problem) -> None:
        result.problem_count += 1
        emit(found)

    for found in stream.file_problems:
        problem(found)
    items, warnings = stream.walk()
    for item in items:
        if not isinstance(item, Enrollment):
            result.invalid += 1
            for found in item.problems:
                problem(found)
            continue
        pre = preflight_enrollment(
            item, audio_root, stream.file, cache, stereo=stereo, convert=convert
        )
        if pre.ok:
            result.valid += 1
            result.audio_files += len(pre.facts)
            result.audio_seconds += sum(f.duration for f in pre.facts)
        else:
            result.invalid += 1
            for found in pre.problems:
                problem(found)
    result.warnings = list(warnings)
    result.audio_seconds = round(result.audio_seconds, 3)
    return result


def checked_paths(
    args: Sequence[str], defaults: ManifestDefaults
) -> tuple[list[tuple[Path, str]], list[Problem]]:
    """The manifests `args` name, and the problems with the arguments or the audio root."""
    paths, problems = manifest_paths(args)
    if paths and not defaults.audio_root.is_dir():
        problems.append(
            Problem(
                file=str(defaults.audio_root),
                reason="the audio root is not a folder (set ENROLLER_AUDIO_ROOT or --audio-root)",
            )
        )
    return paths, problems


def checked_manifests(
    paths: Sequence[tuple[Path, str]], defaults: ManifestDefaults
) -> Iterator[tuple[list[EnrollmentPreflight], FileResult]]:
    """Each manifest read whole and preflighted (one audio cache across them), in order."""
    cache: AudioCache = {}
    for path, name in paths:
        parsed = read_manifest(path, defaults, name=name)
        yield check_manifest(
            parsed,
            defaults.audio_root,
            cache,
            defaults.stereo,
            defaults.convert,
            defaults.voice_margin,
        )


def validate_paths(args: Sequence[str], defaults: ManifestDefaults) -> ValidationResult:
    """Parse and preflight every manifest named by `args`; no network, nothing written."""
    paths, errors = checked_paths(args, defaults)
    result = ValidationResult(audio_root=str(defaults.audio_root), errors=errors)
    for _, file_result in checked_manifests(paths, defaults):
        result.files.append(file_result)
    return result


def render_text(result: ValidationResult) -> Iterator[str]:
    """Every problem on its own line, then one summary line per file, then the verdict."""
    for problem in result.errors:
        yield str(problem)
    for file in result.files:
        for problem in file.errors:
            yield str(problem)
        for warning in file.warnings:
            yield str(warning)
        yield file.summary()
    bad = sum(1 for f in result.files if not f.ok)
    if result.ok:
        yield f"all {_count(len(result.files), 'manifest')} valid"
    elif bad:
        yield f"{bad} of {_count(len(result.files), 'manifest')} with problems"
    else:
        yield f"{_count(len(result.errors), 'problem')} with the paths or the audio root"


def run_validate(
    args: Sequence[str], defaults: ManifestDefaults, as_json: bool, out: TextIO | None = None
) -> int:
    """`enroller validate`: print the result; 0 when everything is valid, 1 otherwise."""
    stream = out if out is not None else sys.stdout
    if not as_json:
        return _run_validate_streamed(args, defaults, stream)
    result = validate_paths(args, defaults)
    stream.write(result.model_dump_json(indent=2) + "\n")
    return 0 if result.ok else 1


def _run_validate_streamed(args: Sequence[str], defaults: ManifestDefaults, out: TextIO) -> int:
    """Text output: each problem is printed when found, so memory stays flat (issue 18)."""
    paths, errors = checked_paths(args, defaults)
    result = ValidationResult(audio_root=str(defaults.audio_root), errors=errors)
    for problem in result.errors:
        out.write(f"{problem}\n")
    cache = BoundedCache()
    for path, name in paths:
        manifest = open_manifest(path, defaults, name=name)
        file_result = check_stream(
            manifest,
            defaults.audio_root,
            lambda p: out.write(f"{p}\n"),
            cache,
            defaults.stereo,
            defaults.convert,
        )
        for warning in file_result.warnings:
            out.write(f"{warning}\n")
        out.write(file_result.summary() + "\n")
        file_result.warnings = []
        result.files.append(file_result)
    for line in list(render_text(result))[-1:]:  # the verdict line only: the rest is printed
        out.write(line + "\n")
    return 0 if result.ok else 1
