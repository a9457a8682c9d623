"""Sample audio made on the fly: a voiced tone stands for voice, silence for no voice.

Owns: the synthetic audio the demo ships with and the tests use, so no binary audio is ever
committed, encoded with FFmpeg (PyAV) in any container and codec a call-centre platform
produces. The emulator's voice detector hears the tone as voice and the silence as none, and
so does the worker's (WebRTC's VAD): the tone is a fundamental with its first harmonics, as a
voiced vowel is, because a pure sine reads as speech to that detector at some pitches only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import av
import numpy as np

# File suffix → (FFmpeg muxer, encoder) used when no codec is named.
FORMATS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        ".wav": ("wav", "pcm_s16le"),
        ".flac": ("flac", "flac"),
        ".ogg": ("ogg", "libopus"),  # FFmpeg's own Vorbis encoder writes stereo only
        ".opus": ("ogg", "libopus"),
        ".webm": ("webm", "libopus"),
        ".mp3": ("mp3", "libmp3lame"),
        ".m4a": ("ipod", "aac"),
    }
)
# Encoders that only take some rates; another rate is resampled to the first one above it.
_RATES: Mapping[str, tuple[int, ...]] = MappingProxyType(
    {"libopus": (8000, 12000, 16000, 24000, 48000)}
)


def samples(
    voice_s: float, silence_s: float = 0.0, samplerate: int = 16000, pitch: float = 220.0
) -> np.ndarray:
    """`voice_s` seconds of a `pitch` Hz voiced tone (plus faint noise), then `silence_s` of
    silence. The tone has the pitch's harmonics (amplitude 1/k, up to the 6th, below Nyquist)."""
    rng = np.random.default_rng(7)
    n_voice = round(voice_s * samplerate)
    t = np.arange(n_voice) / samplerate
    harmonics = [k for k in range(1, 7) if k * pitch < samplerate / 2]
    tone = sum(np.sin(2 * np.pi * k * pitch * t) / k for k in harmonics)
    voice = 0.3 * tone + 0.01 * rng.standard_normal(n_voice)
    silence = np.zeros(round(silence_s * samplerate))
    return np.concatenate([voice, silence]).astype(np.float32)


def write_signal(path: Path, signal: np.ndarray, samplerate: int, codec: str | None = None) -> Path:
    """Encode `signal` (float32, shape (samples,) or (channels, samples), in [-1, 1]) to `path`.

    The container follows the suffix (`FORMATS`); `codec` names another FFmpeg encoder for
    it, e.g. `pcm_mulaw`, `pcm_alaw`, `pcm_s24le`, `pcm_f32le` in a WAV, or `vorbis` (stereo
    only) in an Ogg.
    """
    muxer, default_codec = FORMATS[path.suffix.lower()]
    codec = codec or default_codec
    planes = np.atleast_2d(np.asarray(signal, dtype=np.float32))
    layout = {1: "mono", 2: "stereo"}[planes.shape[0]]
    rate = samplerate
    if codec in _RATES and rate not in _RATES[codec]:
        rate = next((r for r in _RATES[codec] if r >= samplerate), _RATES[codec][-1])
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format=muxer) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        if codec == "vorbis":
            stream.codec_context.options = {"strict": "experimental"}
        fmt = stream.codec_context.codec.audio_formats[0].name
        resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
        frames = []
        if planes.shape[1]:  # an empty signal makes a file with no audio frames
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(planes), format="fltp", layout=layout
            )
            frame.rate = samplerate
            frames = [*resampler.resample(frame), *resampler.resample(None)]
        container.start_encoding()  # writes the header even when no packet follows
        for converted in frames:
            for packet in stream.encode(converted):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def write_audio(
    path: Path,
    voice_s: float = 5.0,
    silence_s: float = 0.0,
    samplerate: int = 16000,
    codec: str | None = None,
) -> Path:
    """Write a file (format by suffix) of `voice_s` voice then `silence_s` silence."""
    return write_signal(path, samples(voice_s, silence_s, samplerate), samplerate, codec)
