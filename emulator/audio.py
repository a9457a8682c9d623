"""Audio analysis: decode with soundfile, measure duration, sample rate and voice duration.

Owns: turning a file (path or seekable binary stream) into an `Analysis`. Blocking and CPU-bound
by nature, so callers run `analyze` in a worker thread; it reads in blocks so that memory stays
bounded whatever the file length. Must never touch emulator state.

Voice detection is deliberately simple (contract §3: "a simple energy-based voice detector"):
the signal is cut into 30 ms frames; a frame is voice when its RMS is above both an absolute
floor (so that digital silence and faint hiss never count) and a fraction of the loud frames'
level (so that background noise under speech does not count either).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

FRAME_S = 0.030
ABS_FLOOR_RMS = 10 ** (-35 / 20)  # −35 dBFS: quieter than any speech we would enroll
REL_THRESHOLD = 0.1  # −20 dB below the loud frames (95th percentile of frame RMS)
FRAMES_PER_READ = 1024


@dataclass(frozen=True)
class Analysis:
    """What the emulator learns from a file. `decodable=False` → audio state `notAvailable`."""

    decodable: bool
    duration: float | None = None
    sample_rate: int | None = None
    voice_duration: float | None = None
    channels: int | None = None
    format: str | None = None

    @classmethod
    def undecodable(cls) -> Analysis:
        return cls(decodable=False)


def voice_seconds(frame_rms: np.ndarray, frame_seconds: np.ndarray) -> float:
    """Seconds of voice given each frame's RMS level and length. Pure, for unit tests."""
    if frame_rms.size == 0:
        return 0.0
    loud = float(np.percentile(frame_rms, 95))
    threshold = max(ABS_FLOOR_RMS, REL_THRESHOLD * loud)
    return float(frame_seconds[frame_rms > threshold].sum())


def analyze(source: str | Path | BinaryIO) -> Analysis:
    """Decode and measure `source`. Any decoding failure yields `Analysis.undecodable()`."""
    try:
        with sf.SoundFile(source) as f:
            rate = int(f.samplerate)
            if rate <= 0:
                return Analysis.undecodable()
            frame = max(1, round(FRAME_S * rate))
            rms_parts: list[np.ndarray] = []
            len_parts: list[np.ndarray] = []
            total = 0
            for block in f.blocks(
                blocksize=frame * FRAMES_PER_READ, dtype="float32", always_2d=True
            ):
                mono = block.mean(axis=1)
                total += mono.size
                whole = mono.size // frame
                if whole:
                    frames = mono[: whole * frame].reshape(whole, frame)
                    rms_parts.append(np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)))
                    len_parts.append(np.full(whole, frame / rate))
                rest = mono[whole * frame :]
                if rest.size:  # only the file's last block can be short
                    rms_parts.append(np.array([np.sqrt(np.mean(rest.astype(np.float64) ** 2))]))
                    len_parts.append(np.array([rest.size / rate]))
            if total == 0:
                return Analysis.undecodable()
            rms = np.concatenate(rms_parts)
            lengths = np.concatenate(len_parts)
            return Analysis(
                decodable=True,
                duration=total / rate,
                sample_rate=rate,
                voice_duration=min(voice_seconds(rms, lengths), total / rate),
                channels=int(f.channels),
                format=str(f.format),
            )
    except Exception:  # any decoder failure means "not audio we can use"
        return Analysis.undecodable()
