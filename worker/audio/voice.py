"""Voiced seconds of a recording, measured locally with a real voice-activity detector.

Owns: decoding one file (FFmpeg, `worker.audio.decode`), taking the channel that will be uploaded
(or the mean of all channels, as a mix is uploaded and as the service analyses audio as mono),
resampling it to a rate the detector takes, and counting the 30 ms frames WebRTC's VAD calls
speech. `worker.manifest.preflight` turns the figure into a verdict (`worker.audio.voice_rule`).

Why these libraries: `webrtcvad-wheels` is WebRTC's own VAD (a small C library, a GMM over
sub-band energies, the detector of most VoIP stacks) with binary wheels, so nothing is built on
install; it takes 16-bit mono PCM at 8, 16, 32 or 48 kHz only, so other rates (11.025, 22.05,
44.1 kHz, …) are resampled with `soxr` (libsoxr, the SoX resampler: streaming, high quality,
wheels), chunk by chunk, to 16 kHz (8 kHz below it); so are 32 and 48 kHz (Opus always decodes
at 48 kHz), which the VAD would take but analyses ten times slower. Mode 1 ("low bitrate") is
used: the least aggressive modes count a little trailing voice (a hangover of about 0.17 s per
stretch of speech), which keeps the local check lenient, the safe side for a check that refuses
files (see README, "Voice").

Memory stays at one decoded block plus one resampler chunk. Blocking and CPU-bound (about a
millisecond per second of audio, decoding included): preflight feeds a `VoiceMeter` from the
same decoding pass that counts the file's length, in a worker thread. It never decides whether
a file is good enough.
"""

from __future__ import annotations

import numpy as np
import soxr
import webrtcvad
from pydantic import BaseModel, ConfigDict

from worker.audio.decode import StreamInfo

VAD_MODE = 1  # 0 (least aggressive) … 3 (most); see the module docstring
# The rates it is run at. It analyses at 8 kHz inside whatever it is given, and at 32 or
# 48 kHz its own downsampling makes it ten times slower than soxr to 16 kHz first.
RUN_RATES = (8000, 16000)
FRAME_MS = 30  # the VAD takes 10, 20 or 30 ms frames; 30 ms is its most reliable


def vad_rate(rate: int) -> int:
    """The rate the detector runs at: 8 or 16 kHz, the file's own when it is one of them."""
    if rate in RUN_RATES:
        return rate
    return 16000 if rate >= 16000 else 8000


class VoiceCounter:
    """Counts voiced frames of a mono signal that arrives in float blocks at `rate` Hz."""

    def __init__(self, rate: int, mode: int = VAD_MODE) -> None:
        self.rate = vad_rate(rate)
        self._resampler = (
            soxr.ResampleStream(rate, self.rate, 1, dtype="float32") if self.rate != rate else None
        )
        self._vad = webrtcvad.Vad(mode)
        self._frame = self.rate * FRAME_MS // 1000
        self._rest = np.zeros(0, dtype=np.int16)
        self.frames = 0
        self.voiced = 0

    def add(self, mono: np.ndarray, last: bool = False) -> None:
        """Feed the next block (float samples in [-1, 1]); `last` flushes the resampler."""
        block = np.asarray(mono, dtype=np.float32)
        if self._resampler is not None:
            block = self._resampler.resample_chunk(block, last=last)
        pcm = (np.clip(block, -1.0, 1.0) * 32767.0).astype(np.int16)
        data = np.concatenate([self._rest, pcm])
        whole = data.size // self._frame
        raw = data[: whole * self._frame].astype("<i2").tobytes()
        step = self._frame * 2
        for start in range(0, len(raw), step):
            if self._vad.is_speech(raw[start : start + step], self.rate):
                self.voiced += 1
        self.frames += whole
        self._rest = data[whole * self._frame :]

    @property
    def voice_s(self) -> float:
        """Seconds of voice so far (a partial last frame is never counted)."""
        return self.voiced * FRAME_MS / 1000


class VoiceFigures(BaseModel):
    """Seconds of voice in one file: in the mean of its channels, and in each channel."""

    model_config = ConfigDict(frozen=True)

    mix_s: float
    channels_s: tuple[float, ...]

    def of(self, channel: int | None) -> float:
        """The figure for what is uploaded: one channel, or the mix (None; a mono file)."""
        if channel is None or len(self.channels_s) < 2:
            return self.mix_s
        return self.channels_s[channel]


class VoiceMeter:
    """The voice of one file, measured while it is decoded: a sink for `AudioReader.count`.

    Counts the mix (the mean of the channels) and, for a file of several channels, each one.
    Past `until_s` seconds of audio it stops measuring (`overflowed`): a file that long is
    refused for its length, and its voice is never asked.
    """

    def __init__(
        self, rate: int, channels: int, until_s: float | None = None, mode: int = VAD_MODE
    ) -> None:
        self._mix = VoiceCounter(rate, mode)
        self._per = [VoiceCounter(rate, mode) for _ in range(channels)] if channels > 1 else []
        self._until = None if until_s is None else until_s * rate
        self._samples = 0
        self.overflowed = False

    def __call__(self, block: np.ndarray) -> bool:
        """Take the next block (float32, channels × samples); False once past `until_s`."""
        self._samples += block.shape[1]
        if self._until is not None and self._samples > self._until:
            self.overflowed = True
            return False
        self._mix.add(block.mean(axis=0))
        for i, counter in enumerate(self._per[: block.shape[0]]):
            counter.add(block[i])
        return True

    def figures(self) -> VoiceFigures:
        """The seconds of voice measured (flushing the resamplers): of the first `until_s`
        seconds only, when it `overflowed`."""
        for counter in (self._mix, *self._per):
            counter.add(np.zeros(0, dtype=np.float32), last=True)
        channels = tuple(c.voice_s for c in self._per) if self._per else (self._mix.voice_s,)
        return VoiceFigures(mix_s=self._mix.voice_s, channels_s=channels)


def voice_meter(info: StreamInfo | None, until_s: float | None = None) -> VoiceMeter | None:
    """A meter for the stream `info` describes; None when it names no sample rate."""
    if info is None or info.sample_rate <= 0:
        return None
    return VoiceMeter(info.sample_rate, info.channels, until_s)


NO_RATE = "cannot be decoded as audio (no sample rate)"
