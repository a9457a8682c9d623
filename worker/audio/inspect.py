"""Local audio preflight: what can be known about an audio file without calling the API.

Owns: the voiceprint model requirement table of the API contract (§3 "Models"), the checks of
one file against it (inside the audio root, exists, readable, decodes, not empty, duration,
sample rate, format, size), and the streaming sha256 that becomes the upload alias
`sha256:<hex>`. A file that fails here costs no API call and no credit.

It decodes every file to its end with FFmpeg (`worker.audio.decode`), the decoder the service is
measured against, so a file that only starts like audio, or that another decoder would choke
on, is known here; the accepted formats are `worker.audio.formats`'s. It holds at most one chunk or
decoded frame of a file in memory. It knows nothing of manifests: `worker.manifest.preflight` turns
these per-file results into per-enrollment problems. Everything is synchronous blocking I/O; the
async engine calls it in a worker thread.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO

from pydantic import BaseModel, ConfigDict

from worker.audio.decode import AudioReader, DecodeError, Probe
from worker.audio.files import AudioUnreadable, open_audio, os_reason
from worker.audio.formats import format_problem
from worker.audio.voice import NO_RATE, VoiceFigures, voice_meter
from worker.audio.voice_rule import MIN_TOTAL_VOICE_S
from worker.base.fsutil import sha256_stream

# The emulator answers 413 above this (contract §2); checking it here saves an upload.
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
# Decoding stops past this much audio: longer than any model takes, so the file fails anyway,
# and a small file that expands to hours (a constant FLAC stream) is not decoded for hours.
DECODE_LIMIT_S = 3600.0


class ModelRequirements(BaseModel):
    """What one voiceprint model asks of each audio (contract §3, table "Models")."""

    model_config = ConfigDict(frozen=True)

    model: str
    max_duration_s: float
    min_samplerate: int
    deprecated: bool = False
    replacement: str | None = None  # what to use instead of a deprecated model

    def min_voice_per_audio_s(self, min_audios: int) -> float:
        """Voice each audio must carry: 4.5 s shared over `minAudios` (contract table)."""
        return MIN_TOTAL_VOICE_S / max(min_audios, 1)


MODELS: Mapping[str, ModelRequirements] = MappingProxyType(
    {
        "default/v1": ModelRequirements(
            model="default/v1",
            max_duration_s=120.0,
            min_samplerate=8000,
            deprecated=True,
            replacement="phone/v1",
        ),
        "phone/v1": ModelRequirements(model="phone/v1", max_duration_s=120.0, min_samplerate=8000),
        "digital/v1": ModelRequirements(
            model="digital/v1", max_duration_s=120.0, min_samplerate=16000
        ),
    }
)
# No model takes a longer file: voice is measured up to this, length counted beyond.
LONGEST_MODEL_S = max(req.max_duration_s for req in MODELS.values())
# The model of an enrollment that names none. phone/v1: the vendor's general-purpose current
# model (default/v1 is deprecated and phone/v1 has the same limits), and the lowest sample rate
# floor (8 kHz), so call-centre audio, the common case, passes.
DEFAULT_MODEL = "phone/v1"

# What the operator can do about a format the API refuses (the worker converts when told).
CONVERT_HINT = "set ENROLLER_CONVERT=true (or --convert) to convert it to FLAC before upload"


def known_models_text() -> str:
    return ", ".join(sorted(MODELS))


def model_problem(model: str) -> str | None:
    """Why `model` cannot be used, or None. Unknown models are named with the known ones."""
    if model in MODELS:
        return None
    return f"unknown model; known models are {known_models_text()}"


def model_warning(model: str) -> str | None:
    """A deprecation notice for `model`, or None. Deprecated models still work (contract)."""
    req = MODELS.get(model)
    if req is None or not req.deprecated:
        return None
    instead = f"; use {req.replacement}" if req.replacement else ""
    return f"{model} is deprecated{instead}"


class AudioFacts(BaseModel):
    """What preflight learned about one audio file; the engine uploads from these."""

    model_config = ConfigDict(frozen=True)

    path: Path  # the resolved path that was read (symlinks followed, inside the root)
    size: int  # bytes
    sha256: str  # hex, of the whole file as it will be uploaded
    duration: float  # seconds
    samplerate: int  # Hz
    frames: int  # samples per channel, as decoded
    channels: int
    format: str  # container, worker.audio.formats' short name: wav, flac, ogg, webm, mp3, m4a, …
    codec: str  # FFmpeg codec name: pcm_s16le, pcm_mulaw, flac, opus, vorbis, mp3, aac, …
    complete: bool = True  # False when decoding stopped at its limit (DECODE_LIMIT_S)
    voice: VoiceFigures | None = (
        None  # measured locally (worker.audio.voice); None: too long to use
    )

    @property
    def alias(self) -> str:
        """The upload alias by which a later run finds this audio again (design.md §4)."""
        return f"sha256:{self.sha256}"


def resolves_inside(path: Path, root: Path) -> bool:
    """Whether `path` lies inside `root` after both are resolved (symlinks, `..`) on disk
    (`worker.manifest.values.lexically_inside` compares normalised text only)."""
    real = Path(os.path.realpath(path))
    real_root = Path(os.path.realpath(root))
    return real == real_root or real_root in real.parents


def inspect_audio(
    path: Path,
    audio_root: Path,
    max_bytes: int = MAX_UPLOAD_BYTES,
    *,
    decode_limit_s: float = DECODE_LIMIT_S,
) -> AudioFacts:
    """Decode and hash one file that must lie inside `audio_root`.

    Decoding stops after `decode_limit_s` of audio: the length is then "that or more".

    Raises `AudioUnreadable` with a reason a person understands. The containment check comes
    first and follows symlinks, so a link pointing outside the root is never opened. The file
    is opened once, as a regular file only (`open_audio`: a FIFO or device never hangs or
    feeds it), and its size is checked before anything is hashed.
    """
    if not resolves_inside(path, audio_root):
        raise AudioUnreadable("leads outside the audio root")
    real = Path(os.path.realpath(path))
    try:
        with open_audio(real) as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                raise AudioUnreadable("is empty (0 bytes)")
            if size > max_bytes:
                raise AudioUnreadable(too_large_reason(size, max_bytes))
            info, voice = _decode_and_measure(fh, decode_limit_s)
            fh.seek(0)
            sha, _ = sha256_stream(fh)
    except OSError as exc:
        raise AudioUnreadable(os_reason(exc)) from None
    return AudioFacts(
        path=real,
        size=size,
        sha256=sha,
        duration=info.duration,
        samplerate=info.sample_rate,
        frames=info.frames,
        channels=info.channels,
        format=info.container,
        codec=info.codec,
        complete=info.complete,
        voice=voice,
    )


def _decode_and_measure(fh: BinaryIO, decode_limit_s: float) -> tuple[Probe, VoiceFigures | None]:
    """One decoding pass: the exact length, and the voice of a file some model could take.

    Voice is measured only up to the longest model's maximum: past it the file fails for its
    length anyway, and the rest is only counted (up to `decode_limit_s`).
    """
    try:
        with AudioReader(fh) as reader:
            meter = voice_meter(reader.info, until_s=LONGEST_MODEL_S)
            info = reader.count(stop_after_s=decode_limit_s, sink=meter)
    except DecodeError as exc:
        raise AudioUnreadable(str(exc)) from None
    if not (info.complete and 0 < info.duration <= LONGEST_MODEL_S):
        return info, None
    if meter is None:
        raise AudioUnreadable(NO_RATE)
    return info, meter.figures()


def too_large_reason(size: int, max_bytes: int) -> str:
    return f"{size / 2**20:.1f} MiB is larger than the {max_bytes / 2**20:.0f} MiB the API accepts"


def requirement_problems(
    facts: AudioFacts,
    model: str,
    min_audios: int = 1,
    max_bytes: int = MAX_UPLOAD_BYTES,
    converted: bool = False,
) -> list[str]:
    """Every way a readable file fails `model`, as reasons without the file name.

    `converted`: the file is converted to FLAC before upload (worker.audio.derive), so its own
    format does not matter.
    """
    problems: list[str] = []
    if facts.frames == 0:
        return ["contains no audio (0 frames)"]
    if not converted and (problem := format_problem(facts.format, facts.codec)) is not None:
        problems.append(f"{problem}; {CONVERT_HINT}")
    if facts.size > max_bytes:
        problems.append(too_large_reason(facts.size, max_bytes))
    req = MODELS.get(model)
    if req is None:
        return problems  # the unknown model is reported once per enrollment, not per file
    if facts.samplerate < req.min_samplerate:
        problems.append(
            f"sample rate {facts.samplerate} Hz is below the {req.min_samplerate} Hz "
            f"that {model} needs"
        )
    if facts.duration > req.max_duration_s:
        more = "" if facts.complete else " or more"
        problems.append(
            f"{facts.duration:.1f} s{more} is longer than the {req.max_duration_s:g} s maximum "
            f"of {model}"
        )
    needed = req.min_voice_per_audio_s(min_audios)
    if facts.duration < needed:
        problems.append(
            f"{facts.duration:.2f} s is shorter than the {needed:.2f} s of voice that {model} "
            f"needs per audio with minAudios {min_audios}"
        )
    return problems
