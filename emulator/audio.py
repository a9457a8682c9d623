"""Audio analysis: decode with FFmpeg, measure duration, sample rate and voice duration.

Owns: turning a file (path or seekable binary stream) into an `Analysis`. It decodes through
`worker.audio.decode` (PyAV, FFmpeg's decoders, as the service does) and accepts exactly the formats
of `worker.audio.formats`, the list the worker's preflight checks against; any other format, even
one FFmpeg decodes (MP3, M4A), is `notAvailable` as the contract says. Blocking and CPU-bound
by nature, so callers run `analyze` in a worker thread; it reads in blocks so that memory stays
bounded whatever the file length. Must never touch emulator state.

The audio is analysed as mono (contract §3): channels are averaged. Voice detection is
deliberately simple (contract §3: "a simple energy-based voice detector"): the signal is cut
into 30 ms frames; a frame is voice when its RMS is above both an absolute floor (so that
digital silence and faint hiss never count) and a fraction of the loud frames' level (so that
background noise under speech does not count either).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from worker.audio.decode import AudioReader

FRAME_S = 0.030
ABS_FLOOR_RMS = 10 ** (-35 / 20)  # −35 dBFS: quieter than any speech we would enroll
REL_THRESHOLD = 0.1  # −20 dB below the loud frames (95th percentile of frame RMS)


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


class _FrameLevels:
    """RMS of consecutive `frame`-sample frames of a mono signal that arrives in blocks."""

    def __init__(self, frame: int) -> None:
        self.frame = frame
        self.total = 0
        self._rest = np.zeros(0, dtype=np.float64)
        self._rms: list[np.ndarray] = []

    def add(self, mono: np.ndarray) -> None:
        self.total += mono.size
        data = np.concatenate([self._rest, mono.astype(np.float64)])
        whole = data.size // self.frame
        if whole:
            frames = data[: whole * self.frame].reshape(whole, self.frame)
            self._rms.append(np.sqrt(np.mean(frames**2, axis=1)))
        self._rest = data[whole * self.frame :]

    def levels(self, rate: int) -> tuple[np.ndarray, np.ndarray]:
        """Every frame's RMS and length in seconds; a short last frame counts for its length."""
        rms = list(self._rms)
        lengths = [np.full(r.size, self.frame / rate) for r in rms]
        if self._rest.size:
            rms.append(np.array([np.sqrt(np.mean(self._rest**2))]))
            lengths.append(np.array([self._rest.size / rate]))
        if not rms:
            return np.zeros(0), np.zeros(0)
        return np.concatenate(rms), np.concatenate(lengths)


def _analyze_stream(fh: BinaryIO) -> Analysis:
    with AudioReader(fh) as reader:
        info = reader.info
        if info is None or info.problem is not None or info.sample_rate <= 0:
            return Analysis.undecodable()  # another format is `notAvailable`, as contracted
        rate = info.sample_rate
        levels = _FrameLevels(max(1, round(FRAME_S * rate)))
        for block in reader.blocks():
            levels.add(block.mean(axis=0))
    if levels.total == 0:
        return Analysis.undecodable()
    rms, lengths = levels.levels(rate)
    duration = levels.total / rate
    return Analysis(
        decodable=True,
        duration=duration,
        sample_rate=rate,
        voice_duration=min(voice_seconds(rms, lengths), duration),
        channels=info.channels,
        format=info.container,
    )


def analyze(source: str | Path | BinaryIO) -> Analysis:
    """Decode and measure `source`. Any decoding failure yields `Analysis.undecodable()`."""
    try:
        with contextlib.ExitStack() as stack:
            if isinstance(source, str | Path):
                fh: BinaryIO = stack.enter_context(open(source, "rb"))
            else:
                fh = source
            return _analyze_stream(fh)
    except Exception:  # DecodeError, or any other failure: "not audio we can use"
        return Analysis.undecodable()
