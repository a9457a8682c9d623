"""Decoding audio with FFmpeg (PyAV), the decoder the service itself is measured against.

Owns: opening an already-open binary file as audio, naming its container and codec, and
decoding its first audio stream block by block, with a time bound, into float32 arrays or just
a sample count. Every failure is a `DecodeError` whose message is a reason a person reads.

Why FFmpeg and not libsndfile: libsndfile 1.2.2 (the `soundfile` wheel, with libFLAC 1.4.3)
rejects FLAC frames whose decoded samples leave the stream's bit depth, e.g. a +32768 peak in a
16-bit file written by libFLAC 1.3.3, which did not check its input. libFLAC ≥ 1.4 reports
such a frame as a CRC mismatch, then loses sync; FFmpeg decodes it, as the service does. The
vendor's own example recordings contain such frames (see README, "Recordings").

It holds one decoded block (`BLOCK_SAMPLES` samples) at a time and never reads a file twice;
callers open the file (regular files only) and pass the object in. Blocking and CPU-bound:
async callers run it in a worker thread. It knows nothing of models, manifests or the API.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, BinaryIO

import av
import av.error
import numpy as np
from pydantic import BaseModel, ConfigDict

from worker.audio.formats import DEMUXERS, container_name, format_problem
from worker.base.errors import EnrollmentFailed

# A file that takes longer than this to decode is reported, not waited for. A 2-minute call
# decodes in milliseconds; only a hostile or broken stream gets near it.
DEFAULT_TIME_LIMIT_S = 20.0
_OPEN_OPTIONS = {
    # Only the demuxers that an audio recording can need (see worker.audio.formats.DEMUXERS), and no
    # protocol at all: a file object is read through Python, so nothing else is ever opened.
    "format_whitelist": ",".join(DEMUXERS),
    "protocol_whitelist": "none",
    # Bytes read to recognise the format and to analyse the stream before decoding. FFmpeg's
    # default (5 MB) analyses a whole small WAV first (~1.5 ms per open; 0.2 ms with 4 KiB).
    # Headers are read in full whatever this says: every format here, a FLAC behind 200 KB
    # of metadata, a WAV behind a 100 KB chunk, an MP3 behind a 2 MB ID3 tag are found alike.
    "probesize": "4096",
    # The WAV demuxer's packet size: by default ~1 KiB, so a 5 s call decodes in ~70 frames
    # and the per-frame work (numpy, the time bound) was most of a WAV's preflight. 8 KiB
    # makes preflight 35 % cheaper; larger packets make the open's probing dearer again.
    # Only PCM demuxers read it; the others ignore it.
    "max_size": "8192",
}
# Decoded audio is handed out in blocks of at least this many samples per channel.
BLOCK_SAMPLES = 1 << 15
# The head of the file where a Matroska EBML header names its DocType ("webm" or "matroska").
_DOCTYPE_HEAD = 64


class DecodeError(EnrollmentFailed):
    """The file cannot be decoded as audio; the message is the reason, for a person."""


class StreamInfo(BaseModel):
    """What the container says about the first audio stream, before decoding."""

    model_config = ConfigDict(frozen=True)

    container: str  # short name: wav, flac, ogg, webm, mp3, m4a, …
    codec: str  # FFmpeg codec name: pcm_s16le, pcm_mulaw, flac, opus, vorbis, mp3, aac, …
    sample_rate: int  # Hz, as decoded (Opus always decodes at 48 kHz)
    channels: int

    @property
    def problem(self) -> str | None:
        """Why the API would refuse this format, or None (`worker.audio.formats`)."""
        return format_problem(self.container, self.codec)


class Probe(StreamInfo):
    """A stream decoded to its end (or to `stop_after_s`): its exact length."""

    frames: int  # samples per channel actually decoded
    complete: bool = True  # False when decoding stopped at `stop_after_s`

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _ffmpeg_reason(exc: Exception) -> str:
    if isinstance(exc, av.error.FFmpegError):
        return exc.strerror or type(exc).__name__
    return str(exc) or type(exc).__name__


class AudioReader:
    """The first audio stream of an open binary file, decoded on demand.

    Use as a context manager; `info` is known once it is entered. The file object stays
    open (its owner closes it) and is read from its current position.
    """

    def __init__(self, fh: BinaryIO, time_limit_s: float = DEFAULT_TIME_LIMIT_S) -> None:
        self._fh = fh
        self._time_limit_s = time_limit_s
        self._deadline = 0.0
        self._container: Any = None
        self._stream: Any = None
        self.info: StreamInfo | None = None

    def __enter__(self) -> AudioReader:
        self._deadline = time.monotonic() + self._time_limit_s
        start = self._fh.tell()
        webm = b"webm" in self._fh.read(_DOCTYPE_HEAD)
        self._fh.seek(start)
        try:
            self._container = av.open(self._fh, mode="r", options=_OPEN_OPTIONS)
        except (av.error.FFmpegError, ValueError, OSError, EOFError) as exc:
            reason = _ffmpeg_reason(exc)
            raise DecodeError(f"cannot be decoded as audio (FFmpeg: {reason})") from None
        try:
            if not self._container.streams.audio:
                raise DecodeError("holds no audio stream")
            self._stream = self._container.streams.audio[0]
            ctx = self._stream.codec_context
            self.info = StreamInfo(
                container=container_name(self._container.format.name, webm_doctype=webm),
                codec=ctx.codec.canonical_name,
                sample_rate=int(ctx.sample_rate or 0),
                channels=int(ctx.layout.nb_channels if ctx.layout else ctx.channels),
            )
        except BaseException:
            self._container.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def _frames(self) -> Iterator[Any]:
        """Decoded frames, one at a time, under the time bound."""
        seconds = 0.0
        try:
            for packet in self._container.demux(self._stream):
                for frame in packet.decode():
                    if time.monotonic() > self._deadline:
                        raise DecodeError(
                            f"took longer than {self._time_limit_s:g} s to decode "
                            f"(stopped at {seconds:.1f} s of audio)"
                        )
                    if frame.rate:
                        seconds += frame.samples / frame.rate
                    yield frame
        except (av.error.FFmpegError, ValueError, OSError, EOFError) as exc:
            raise DecodeError(
                f"cannot be decoded after {seconds:.2f} s of audio (FFmpeg: {_ffmpeg_reason(exc)})"
            ) from None

    def count(self, stop_after_s: float | None = None, sink: BlockSink | None = None) -> Probe:
        """Decode to the end (or past `stop_after_s` seconds), counting samples.

        With `sink`, the decoded audio is also handed to it in blocks (as `blocks` makes them)
        for as long as it answers True: preflight learns a file's exact length and measures
        its voice in one decoding pass, where two passes were half of a worker's CPU.
        """
        if self.info is None:
            raise RuntimeError("AudioReader used outside its with-block")
        frames = 0
        rate = self.info.sample_rate
        complete = True
        gather = _Blocks(BLOCK_SAMPLES)
        for frame in self._frames():
            rate = rate or int(frame.rate or 0)
            frames += frame.samples
            if sink is not None and (block := gather.add(_float_planes(frame))) is not None:
                sink = sink if sink(block) else None
            if stop_after_s is not None and rate and frames > stop_after_s * rate:
                complete = False
                break
        if sink is not None and (block := gather.rest()) is not None:
            sink(block)
        return Probe(
            **self.info.model_dump(exclude={"sample_rate"}),
            sample_rate=rate,
            frames=frames,
            complete=complete,
        )

    def blocks(self, block_samples: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
        """The decoded audio as float32 arrays shaped (channels, samples), in blocks.

        Frames are gathered into blocks of at least `block_samples` (the last may be shorter):
        a WAV decodes in frames of a few hundred samples, and per-frame work would dominate.
        """
        gather = _Blocks(block_samples)
        for frame in self._frames():
            if (block := gather.add(_float_planes(frame))) is not None:
                yield block
        if (block := gather.rest()) is not None:
            yield block


# Takes the next decoded block; answers whether it wants more.
BlockSink = Callable[[np.ndarray], bool]


class _Blocks:
    """Decoded frames gathered into blocks of at least `samples` samples per channel."""

    def __init__(self, samples: int) -> None:
        self._samples = samples
        self._pending: list[np.ndarray] = []
        self._held = 0

    def add(self, planes: np.ndarray) -> np.ndarray | None:
        """Take one frame's planes; a whole block once enough are held."""
        self._pending.append(planes)
        self._held += planes.shape[1]
        return self.rest() if self._held >= self._samples else None

    def rest(self) -> np.ndarray | None:
        """What is held, as one block (None when nothing is)."""
        pending, self._pending, self._held = self._pending, [], 0
        if not pending:
            return None
        return pending[0] if len(pending) == 1 else np.concatenate(pending, axis=1)


# Decoded sample formats (packed or planar) → the factor to [-1, 1]; others are resampled.
_INT_SCALE = {"s16": 1 / 32768, "s32": 1 / 2**31}


def _float_planes(frame: Any) -> np.ndarray:
    """One decoded frame as float32 (channels, samples), without a resampler when it can."""
    name = frame.format.name
    base = name.removesuffix("p")
    channels = frame.layout.nb_channels
    if base not in _INT_SCALE and base not in ("flt", "dbl"):
        resampler = av.AudioResampler(format="fltp")  # u8, s64…: rare, let FFmpeg convert
        outs = [*resampler.resample(frame), *resampler.resample(None)]
        return np.concatenate([o.to_ndarray() for o in outs], axis=1)
    data = frame.to_ndarray()
    if not frame.format.is_planar:  # interleaved: one row of samples × channels
        data = data.reshape(-1, channels).T
    if base in _INT_SCALE:
        return data.astype(np.float32) * np.float32(_INT_SCALE[base])
    return data.astype(np.float32, copy=False)
