"""Derived uploads: the customer's channel, a mix, or a conversion, as a mono FLAC file.

Owns: deciding from a file's decoded facts and its manifest entry whether it can be uploaded
as it is, must be reduced to one channel, mixed, or converted, or cannot be used (pure:
`plan_derivation`); and writing that derived file (`derive_flac`): decoded by FFmpeg, the
chosen channel (or the mean of all), encoded as 16-bit mono FLAC at the decoded rate, written
atomically (temp, fsync, rename) under its sha256 into a work folder. That hash is the upload
alias, so it names the bytes actually sent. The same input always encodes to the same bytes.

Why mono: a voiceprint made from a stereo call mixes the agent's voice into the customer's,
and the service analyses audio as mono without saying how it mixes (contract §3 "Audios").

Derived files live in the job's work folder (`active/<job>/work/`, removed with the job). Each
is deleted once its enrollment has ended, so the folder holds the files of the enrollments in
progress only; a kill mid-conversion leaves a `.tmp` file that the job's next start removes.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import av
import numpy as np
import structlog
from pydantic import BaseModel, ConfigDict

from worker.audio.decode import DEFAULT_TIME_LIMIT_S, AudioReader, DecodeError
from worker.audio.files import AudioUnreadable, VerifiedUpload, open_audio
from worker.audio.formats import format_label, is_accepted
from worker.base.crashpoints import crash_point
from worker.base.fsutil import remove_leftovers, sha256_stream
from worker.base.text import SafeStr

log = structlog.get_logger(__name__)

StereoMode = Literal["channel", "downmix"]
WORK_DIR_NAME = "work"  # inside the job's folder in active/
DERIVED_SUFFIX = ".flac"
_TMP_PREFIX, _TMP_SUFFIX = ".derive-", ".tmp"
# Encoded output is flushed in pieces of about this many samples per channel.
_ENCODE_SAMPLES = 1 << 16


class Derivation(BaseModel):
    """What is done to one source file before upload, and the journal's key for it."""

    model_config = ConfigDict(frozen=True)

    source_sha256: str
    source_format: str  # worker.audio.formats' label of the source, e.g. "wav (pcm_mulaw)", "mp3"
    source_channels: int
    channel: int | None  # the channel kept; None: all channels mixed (or a mono source)
    converted: bool  # the source format is not accepted by the API

    @property
    def key(self) -> str:
        """(source sha256, channel, conversion): what ties a derived upload to its source."""
        kept = "mix" if self.channel is None else f"ch{self.channel}"
        return f"{self.source_sha256}:{kept}:flac-s16-mono"

    def describe(self) -> str:
        """What was done, for the report: `channel 1 of 2 as mono FLAC`."""
        if self.channel is not None and self.source_channels > 1:
            what = f"channel {self.channel} of {self.source_channels}"
        elif self.source_channels > 1:
            what = f"{self.source_channels} channels mixed"
        else:
            what = "mono"
        done = f"{what} as mono FLAC" if what != "mono" else "as mono FLAC"
        if self.converted:
            return f"converted from {self.source_format}, {done}"
        return done


def _channel_range(channels: int) -> str:
    return "channel 0 or 1" if channels == 2 else f"channel 0 to {channels - 1}"


def plan_derivation(
    *,
    sha256: str,
    container: str,
    codec: str,
    channels: int,
    channel: int | None,
    stereo: StereoMode,
    convert: bool,
) -> Derivation | str | None:
    """None: upload the file as it is; a `Derivation`; or the reason it cannot be used.

    A format problem is not reported here (preflight names it, with the accepted list), only
    what the channel asks: a stereo file without a channel fails unless `stereo` is
    "downmix"; a channel the file does not have fails.
    """
    if channel is not None and channel >= channels:
        have = f"{channels} channel{'' if channels == 1 else 's'}"
        return f"channel {channel} does not exist: the recording has {have}"
    if channels > 1 and channel is None and stereo != "downmix":
        kind = "stereo recording" if channels == 2 else f"recording with {channels} channels"
        return f"{kind}: name the customer's channel ({_channel_range(channels)})"
    accepted = is_accepted(container, codec)
    if accepted and channels == 1:
        return None  # channel 0 of a mono file is the file
    if not accepted and not convert:
        return None  # refused by preflight's format check, which names the accepted formats
    return Derivation(
        source_sha256=sha256,
        source_format=format_label(container, codec),
        source_channels=channels,
        channel=channel if channels > 1 else None,
        converted=not accepted,
    )


def derived_path(work_dir: Path, sha256: str) -> Path:
    return work_dir / f"{sha256}{DERIVED_SUFFIX}"


def _mono(block: np.ndarray, channel: int | None) -> np.ndarray:
    if channel is not None:
        return block[channel]
    return block.mean(axis=0, dtype=np.float32)


def derive_flac(
    source: BinaryIO,
    derivation: Derivation,
    work_dir: Path,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
) -> tuple[Path, str, int]:
    """Write `derivation` of the open `source` into `work_dir`: (path, sha256, size).

    The file appears under its final name only once complete and synced; a kill at any
    instant leaves at most a `.tmp` file that the next run's cleanup removes. Raises
    `DecodeError` when the source does not decode.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=work_dir, prefix=_TMP_PREFIX, suffix=_TMP_SUFFIX)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w+b") as out:
            _encode(source, derivation.channel, out, time_limit_s)
            out.flush()
            os.fsync(out.fileno())
            out.seek(0)
            sha, size = sha256_stream(out)
        final = derived_path(work_dir, sha)
        crash_point("derive.written")
        os.replace(tmp, final)
        dir_fd = os.open(work_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final, sha, size


def _encode(source: BinaryIO, channel: int | None, out: BinaryIO, time_limit_s: float) -> None:
    with AudioReader(source, time_limit_s) as reader:
        info = reader.info
        if info is None or info.sample_rate <= 0:
            raise DecodeError("cannot be decoded as audio (no sample rate)")
        rate = info.sample_rate
        with av.open(out, mode="w", format="flac") as container:
            container.metadata.clear()
            stream = container.add_stream("flac", rate=rate, layout="mono")
            stream.codec_context.options = {"compression_level": "5"}
            to_s16 = av.AudioResampler(format="s16", layout="mono", rate=rate)
            pending: list[np.ndarray] = []
            held = 0
            for block in reader.blocks():
                pending.append(np.clip(_mono(block, channel), -1.0, 1.0))
                held += pending[-1].size
                crash_point("derive.encoding")
                if held >= _ENCODE_SAMPLES:
                    _write(container, stream, to_s16, np.concatenate(pending), rate)
                    pending, held = [], 0
            if pending:
                _write(container, stream, to_s16, np.concatenate(pending), rate)
            for packet in stream.encode(None):
                container.mux(packet)


def _write(container: Any, stream: Any, to_s16: Any, mono: np.ndarray, rate: int) -> None:
    frame = av.AudioFrame.from_ndarray(mono.reshape(1, -1), format="fltp", layout="mono")
    frame.rate = rate
    for converted in to_s16.resample(frame):
        for packet in stream.encode(converted):
            container.mux(packet)


# --- derived uploads of a job ------------------------------------------------------------------


class DerivedInfo(BaseModel):
    """A file uploaded as a derived copy: which source, which channel, what was done."""

    model_config = ConfigDict(frozen=True)
    file: SafeStr  # the source, as the manifest names it
    channel: int | None  # as the manifest names it
    done: str  # "channel 1 of 2 as mono FLAC", "converted from mp3, as mono FLAC"
    sha256: str  # of the uploaded bytes: the audio's alias is sha256:<this>


@dataclass
class DerivedUpload:
    """One derived file of an enrollment: where it comes from and the upload made of it."""

    derivation: Derivation
    source: Path  # the resolved source file preflight read
    name: str  # the source as the manifest names it
    channel: int | None  # as the manifest names it
    upload: VerifiedUpload  # the derived file in the work folder, its size and sha256

    def info(self) -> DerivedInfo:
        return DerivedInfo(
            file=self.name,
            channel=self.channel,
            done=self.derivation.describe(),
            sha256=self.upload.sha256,
        )

    def ensure(self) -> None:
        """Make the file exist again if it is gone (blocking): the same input, the same bytes.

        Needed only when a restart trusted the journal's hash and then found the audio not
        yet uploaded; raises `AudioUnreadable` if the bytes came out different.
        """
        if self.upload.path.exists():
            return
        _, sha, size = _derive_from(
            self.source, self.derivation, self.upload.path.parent, self.name
        )
        if (sha, size) != (self.upload.sha256, self.upload.size):
            raise AudioUnreadable(
                f"derived again, it is not the file the journal names (sha256 {sha[:12]}…, "
                f"expected {self.upload.sha256[:12]}…): was the source changed?"
            )

    def discard(self) -> None:
        """Delete the derived file: its upload is confirmed, or its enrollment ended (blocking)."""
        crash_point("derive.discard")
        self.upload.path.unlink(missing_ok=True)


def _derive_from(
    source: Path, derivation: Derivation, work_dir: Path, name: str
) -> tuple[Path, str, int]:
    try:
        with open_audio(source) as fh:
            path, sha, size = derive_flac(fh, derivation, work_dir)
    except DecodeError as exc:
        raise AudioUnreadable(str(exc)) from None
    log.info("audio_derived", file=name, done=derivation.describe(), sha256=sha, size=size)
    return path, sha, size


def derived_upload(
    source: Path,
    name: str,
    channel: int | None,
    derivation: Derivation,
    work_dir: Path,
    known: tuple[str, int] | None,
) -> DerivedUpload:
    """The upload for `derivation` of `source` (blocking): made now, or as the journal knew it.

    `known` is the journal's (sha256, size) for this derivation: then nothing is converted
    now; the file is made again only if the upload still needs it (`DerivedUpload.ensure`).
    """
    if known is not None:
        sha, size = known
        path = derived_path(work_dir, sha)
    else:
        path, sha, size = _derive_from(source, derivation, work_dir, name)
    return DerivedUpload(
        derivation=derivation,
        source=source,
        name=name,
        channel=channel,
        upload=VerifiedUpload(path=path, size=size, sha256=sha),
    )


def sweep_work_dir(work_dir: Path) -> int:
    """Remove what a kill mid-conversion left (`.tmp` files); returns how many (blocking)."""
    return remove_leftovers(work_dir, _TMP_PREFIX, _TMP_SUFFIX)
