"""Sample audio made on the fly: a tone stands for voice, silence for no voice.

Owns: the synthetic audio the demo ships with and the tests use, so no binary audio is ever
committed. The emulator's voice detector hears the tone as voice and the silence as none.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}


def samples(voice_s: float, silence_s: float = 0.0, samplerate: int = 16000) -> np.ndarray:
    """`voice_s` seconds of a 220 Hz tone (plus faint noise) followed by `silence_s` of silence."""
    rng = np.random.default_rng(7)
    n_voice = round(voice_s * samplerate)
    t = np.arange(n_voice) / samplerate
    voice = 0.5 * np.sin(2 * np.pi * 220.0 * t) + 0.01 * rng.standard_normal(n_voice)
    silence = np.zeros(round(silence_s * samplerate))
    return np.concatenate([voice, silence]).astype(np.float32)


def write_audio(
    path: Path,
    voice_s: float = 5.0,
    silence_s: float = 0.0,
    samplerate: int = 16000,
) -> Path:
    """Write a WAV/FLAC/OGG file (by suffix) of `voice_s` voice then `silence_s` silence."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = FORMATS[path.suffix.lower()]
    subtype = "VORBIS" if fmt == "OGG" else "PCM_16"
    sf.write(path, samples(voice_s, silence_s, samplerate), samplerate, format=fmt, subtype=subtype)
    return path
