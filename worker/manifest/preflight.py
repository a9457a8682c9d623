"""Local preflight of one enrollment: every audio file read, checked and measured, no request.

Owns: turning per-file audio results (`worker.audio.inspect`) into per-enrollment problems (an
enrollment with any bad file is invalid, the others are unaffected), located where the manifest
names each file, the local voice check of each file that passes (`worker.audio.voice_rule`), and
what is cached of each path (`bounded_cache`: a `worker.base.lru.LruCache`). The engine
calls `preflight_enrollment` (in a worker thread: it is blocking I/O) on each enrollment
`worker.manifest` returns; `enroller validate`, `plan` and `submit` (`worker.commands.validate`)
run it over whole files.

It never makes a network call and never moves or writes a file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from worker.audio.derive import Derivation, StereoMode, plan_derivation
from worker.audio.files import AudioUnreadable
from worker.audio.inspect import MODELS, AudioFacts, inspect_audio, requirement_problems
from worker.audio.voice_rule import (
    LocalVoice,
    VoiceVerdict,
    near_warning,
    too_little_reason,
    voice_verdict,
)
from worker.base.lru import LruCache
from worker.config.settings import setting_default
from worker.manifest.models import Enrollment, Problem
from worker.manifest.values import show
from worker.objects.uri import is_object_path

# What `inspect_audio` learned about a path: facts, or the reason it could not be read.
AudioCache = MutableMapping[Path, AudioFacts | str]
# How many paths a streamed validation remembers (files shared by several enrollments are
# usually listed close together): its memory stays flat for a manifest of any length.
STREAM_CACHE_PATHS = 10_000


def bounded_cache() -> LruCache[Path, AudioFacts | str]:
    """An `AudioCache` for a streamed check: the `STREAM_CACHE_PATHS` most recently used."""
    return LruCache(STREAM_CACHE_PATHS)


class EnrollmentPreflight(BaseModel):
    """One enrollment after local preflight: the facts of each file, or why it cannot run."""

    model_config = ConfigDict(frozen=True)

    enrollment: Enrollment
    facts: tuple[AudioFacts, ...] = ()  # one per audio, in manifest order, when all are good
    # Per audio, what is done to it before upload (a channel, a mix, a conversion), or None.
    derivations: tuple[Derivation | None, ...] = ()
    # Per audio that passed, its voice as measured locally (worker.audio.voice), for the report.
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
        result = with_paths(str(exc), path, audio_root)
    if cache is not None:
        cache[path] = result
    return result


def _inspected(
    enrollment: Enrollment,
    audio_root: Path,
    cache: AudioCache | None,
    objects: Mapping[Path, Path] | None,
) -> Iterator[tuple[int, str, AudioFacts | str]]:
    """(index, name, facts or reason) of each audio: a file, or an S3 object's download in
    the job's work folder. An object not downloaded (validate and plan read no S3) is left
    out: the running job downloads it and checks it then."""
    for i, (path, name) in enumerate(zip(enrollment.audios, enrollment.audio_names, strict=True)):
        if not is_object_path(path):
            yield i, name, _inspect(path, audio_root, cache)
        elif (local := (objects or {}).get(path)) is not None:
            yield i, name, _inspect(local, local.parent, cache)


def with_paths(reason: str, path: Path, audio_root: Path) -> str:
    """A missing or escaping file's reason with the path it resolved to and the root: a relative
    name alone does not say which folder was searched (`ENROLLER_AUDIO_ROOT`)."""
    if reason == "does not exist":
        return f"{reason} ({path}; audio root {audio_root})"
    if reason == "leads outside the audio root":
        return f"{reason} (it resolves to {os.path.realpath(path)}; audio root {audio_root})"
    return reason


def audio_problem(enrollment: Enrollment, i: int, file: str, reason: str) -> Problem:
    """A problem with the `i`-th audio of `enrollment`, located where the manifest names it."""
    field = enrollment.audio_fields[i] if enrollment.audio_fields else f"audios[{i}]"
    place = enrollment.audio_places[i] if enrollment.audio_places else enrollment.source
    name = show(enrollment.audio_names[i])
    return Problem(file=file, place=place, field=field, value=name, reason=reason)


def _near_warnings(
    voice: LocalVoice, enrollment: Enrollment, i: int, file: str, voice_margin: float
) -> list[Problem]:
    """A warning when a file's voice is a little short of its model's rule (within the margin):
    it is uploaded anyway, and the server's own measure decides."""
    if voice.verdict is not VoiceVerdict.NEAR:
        return []
    warning = near_warning(voice.voice_s, voice.needed_s, voice_margin)
    return [audio_problem(enrollment, i, file, warning).model_copy(update={"severity": "warning"})]


def preflight_enrollment(
    enrollment: Enrollment,
    audio_root: Path,
    file: str,
    cache: AudioCache | None = None,
    stereo: StereoMode = setting_default("stereo"),
    convert: bool = setting_default("convert"),
    voice_margin: float = setting_default("voice_margin"),
    objects: Mapping[Path, Path] | None = None,
) -> EnrollmentPreflight:
    """Check every audio file of one enrollment against its model; blocking I/O.

    `file` names the manifest in messages; `cache` reads and hashes a file shared by several
    voiceprints once. `stereo` and `convert` say what may be derived from a file (a mix, a
    conversion: worker.audio.derive). Each file that passes is measured for voice: clearly
    too little is a problem, a little short (within `voice_margin`) a warning. `objects`:
    S3 downloads, read in place of their stand-in paths (`_inspected`)."""
    problems: list[Problem] = []
    warnings: list[Problem] = []
    voices: list[LocalVoice] = []
    facts: list[AudioFacts] = []
    derivations: list[Derivation | None] = []
    first_by_sha: dict[str, str] = {}
    channels = enrollment.channels
    for i, name, found in _inspected(enrollment, audio_root, cache, objects):

        def problem(reason: str, i: int = i) -> None:
            problems.append(audio_problem(enrollment, i, file, reason))

        if isinstance(found, str):
            problem(found)
            continue
        derivation, reasons = _requirements(found, channels[i], enrollment, stereo, convert)
        for reason in reasons:
            problem(reason)
        # Two names, one content: one audio on the server (two channels are two contents).
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
                warnings.extend(_near_warnings(voice, enrollment, i, file, voice_margin))
            facts.append(found)
            derivations.append(derivation)
    if problems:
        return EnrollmentPreflight(enrollment=enrollment, problems=tuple(problems))
    return EnrollmentPreflight(
        enrollment=enrollment,
        facts=tuple(facts),
        derivations=tuple(derivations),
        voice=tuple(voices),
        warnings=tuple(warnings),
    )


def _requirements(
    found: AudioFacts,
    channel: int | None,
    enrollment: Enrollment,
    stereo: StereoMode,
    convert: bool,
) -> tuple[Derivation | None, list[str]]:
    """What is done to the file before upload, and why it fails the model's rules, if it does."""
    derivation = plan_derivation(
        sha256=found.sha256,
        container=found.format,
        codec=found.codec,
        channels=found.channels,
        channel=channel,
        stereo=stereo,
        convert=convert,
    )
    converted = isinstance(derivation, Derivation) and derivation.converted
    reasons = requirement_problems(
        found, enrollment.model, enrollment.min_audios, converted=converted
    )
    if isinstance(derivation, str):
        return None, [derivation, *reasons]
    return derivation, reasons


def voice_check(
    facts: AudioFacts, channel: int | None, enrollment: Enrollment, name: str, margin: float
) -> LocalVoice | str | None:
    """The file's voice measured locally and judged (`worker.audio.voice_rule`); blocking.

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
