"""`enroller validate`: manifests parsed and preflighted, everything short of an API call.

Owns: which paths name manifests (files as given, folders to the manifests in them), the walk
that preflights a manifest enrollment by enrollment (`preflighted`, shared with `enroller plan`
and `submit`) and tallies it into a `FileResult`, the result models that `--json` prints, and
the text form (one line per problem). The run streams: problems are written as they are found
and warnings are parked on disk until their turn (`worker.base.streamout`), so a million rows, even
a million bad ones, cost the memory of one. The per-enrollment preflight itself is
`worker.manifest.preflight` (re-exported here).

It never makes a network call and never moves or writes queue files.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, TypeVar

from pydantic import BaseModel, Field, computed_field

from worker.audio.derive import StereoMode
from worker.base.exitcodes import EXIT_FAILURES, EXIT_OK
from worker.base.streamout import Spool, StreamedObject
from worker.commands.plan_models import ManifestPlan
from worker.config.settings import setting_default
from worker.manifest.models import (
    Enrollment,
    ManifestDefaults,
    ManifestItem,
    Problem,
)
from worker.manifest.preflight import (
    AudioCache,
    EnrollmentPreflight,
    bounded_cache,
    preflight_enrollment,
)
from worker.manifest.read import open_manifest
from worker.manifest.stream import ManifestStream
from worker.queue.rules import NameKind, classify_name

# Files the worker itself writes next to manifests; never manifests themselves.
_OUTPUT_SUFFIXES = (".error.json", ".report.json", ".progress.json")

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


@dataclass(frozen=True)
class Checks:
    """How files are preflighted: the audio root and what may be derived (worker.audio.derive)."""

    audio_root: Path
    stereo: StereoMode = setting_default("stereo")
    convert: bool = setting_default("convert")
    voice_margin: float = setting_default("voice_margin")

    @classmethod
    def of(cls, defaults: ManifestDefaults) -> Checks:
        return cls(defaults.audio_root, defaults.stereo, defaults.convert, defaults.voice_margin)


Checked = tuple[ManifestItem, EnrollmentPreflight | None]  # None: rejected by the parser


def preflighted(
    items: Iterable[ManifestItem], file: str, checks: Checks, cache: AudioCache
) -> Iterator[Checked]:
    """Each item with its preflight (valid enrollments only), one at a time."""
    for item in items:
        if not isinstance(item, Enrollment):
            yield item, None
            continue
        pre = preflight_enrollment(
            item,
            checks.audio_root,
            file,
            cache,
            stereo=checks.stereo,
            convert=checks.convert,
            voice_margin=checks.voice_margin,
        )
        yield item, pre


@dataclass
class Tally:
    """A `FileResult` filled by a walk; each problem and warning is handed on as found."""

    result: FileResult
    error: Callable[[Problem], None]
    warn: Callable[[Problem], None]
    valid: Callable[[EnrollmentPreflight], None] | None = None  # each one that passed

    def add(self, item: ManifestItem, pre: EnrollmentPreflight | None) -> None:
        result = self.result
        if pre is not None and pre.ok:
            result.valid += 1
            result.audio_files += len(pre.facts)
            result.audio_seconds += sum(f.duration for f in pre.facts)
            for warning in pre.warnings:
                self.warn(warning)
            if self.valid is not None:
                self.valid(pre)
            return
        result.invalid += 1
        for problem in item.problems if pre is None else pre.problems:
            self.error(problem)


def check_stream(
    stream: ManifestStream,
    checks: Checks,
    emit: Callable[[Problem], None],
    warn: Callable[[Problem], None],
    cache: AudioCache | None = None,
    valid: Callable[[EnrollmentPreflight], None] | None = None,
) -> FileResult:
    """Preflight a manifest enrollment by enrollment, handing each problem to `emit` at once.

    Nothing is kept per enrollment (counts only); the parser's warnings (a deprecated model,
    once per file) stay in `warnings`, the preflight's go to `warn`.
    """
    result = FileResult(file=stream.file, kind=stream.kind, enrollments=stream.total)

    def problem(found: Problem) -> None:
        result.problem_count += 1
        emit(found)

    for found in stream.file_problems:
        problem(found)
    items, warnings = stream.walk()
    tally = Tally(result, problem, warn, valid)
    for item, pre in preflighted(items, stream.file, checks, cache or bounded_cache()):
        tally.add(item, pre)
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


Emit = Callable[[Problem], None]
R = TypeVar("R", FileResult, ManifestPlan)


def json_file_entry(
    doc: StreamedObject, problems: str, run: Callable[[Emit, Emit], R]
) -> tuple[R, int]:
    """One file of a `--json` run, as `run` finds it: its problems array (`problems`) written
    as they come, then its warnings (the parser's, then the preflight's, spooled meanwhile),
    then its other fields. Returns what `run` returned, its warnings emptied (written), and
    how many problems were written."""
    entry = doc.nested()
    entry.array(problems)
    written = 0

    def emit(problem: Problem) -> None:
        nonlocal written
        written += 1
        entry.add(problem)

    spool = Spool(Problem)
    found = run(emit, spool.add)
    entry.array("warnings", [*found.warnings, *spool.replay()])
    found.warnings = []
    entry.finish(found, exclude={problems, "warnings"})
    return found, written


def _verdict(files: Sequence[FileResult], errors: Sequence[Problem]) -> str:
    bad = sum(1 for f in files if not f.ok)
    if not errors and not bad:
        return f"all {_count(len(files), 'manifest')} valid"
    if bad:
        return f"{bad} of {_count(len(files), 'manifest')} with problems"
    return f"{_count(len(errors), 'problem')} with the paths or the audio root"


def run_validate(
    args: Sequence[str], defaults: ManifestDefaults, as_json: bool, out: TextIO | None = None
) -> int:
    """`enroller validate`: print the result as it is found; 0 when everything is valid."""
    stream = out if out is not None else sys.stdout
    paths, errors = checked_paths(args, defaults)
    run = _json_run if as_json else _text_run
    files = run(paths, errors, defaults, stream)
    return EXIT_OK if not errors and all(f.ok for f in files) else EXIT_FAILURES


def _text_run(
    paths: Sequence[tuple[Path, str]],
    errors: list[Problem],
    defaults: ManifestDefaults,
    out: TextIO,
) -> list[FileResult]:
    """Every problem on its own line, each file's warnings and summary, then the verdict."""
    for problem in errors:
        out.write(f"{problem}\n")
    cache, files = bounded_cache(), []
    for path, name in paths:
        spool = Spool(Problem)
        manifest = open_manifest(path, defaults, name=name)
        found = check_stream(
            manifest, Checks.of(defaults), lambda p: out.write(f"{p}\n"), spool.add, cache
        )
        for warning in [*found.warnings, *spool.replay()]:
            out.write(f"{warning}\n")
        out.write(found.summary() + "\n")
        found.warnings = []
        files.append(found)
    out.write(_verdict(files, errors) + "\n")
    return files


def _json_run(
    paths: Sequence[tuple[Path, str]],
    errors: list[Problem],
    defaults: ManifestDefaults,
    out: TextIO,
) -> list[FileResult]:
    """The `ValidationResult` document, each file's errors written as they are found."""
    doc = StreamedObject(out)
    doc.array("files")
    cache, files = bounded_cache(), []
    for path, name in paths:

        def check(emit: Emit, warn: Emit, path: Path = path, name: str = name) -> FileResult:
            manifest = open_manifest(path, defaults, name=name)
            return check_stream(manifest, Checks.of(defaults), emit, warn, cache)

        files.append(json_file_entry(doc, "errors", check)[0])
    doc.array("errors", errors)
    summary = ValidationResult(audio_root=str(defaults.audio_root), files=files, errors=errors)
    doc.finish(summary, exclude={"files", "errors"})
    out.write("\n")
    return files
