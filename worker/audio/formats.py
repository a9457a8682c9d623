"""The audio formats the API accepts, in one place: the worker's preflight and the emulator.

Owns: the accepted (container, codec) pairs of the API contract (§3 "Audios": WAV PCM 16/24/32,
float, G.711 μ-law and A-law; FLAC; Ogg Vorbis and Opus; WebM Opus), the short name a person
reads for any format FFmpeg recognises, and the sentence that rejects the others. Pure: it
names formats, it never opens a file (`worker.audio.decode` does). The emulator imports this module
so that what it marks `available` and what preflight lets through can never drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# Container (as `container_name` names it) → the codecs the API accepts inside it.
ACCEPTED: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "wav": frozenset(
            {
                "pcm_s16le",  # PCM 16-bit
                "pcm_s24le",  # PCM 24-bit
                "pcm_s32le",  # PCM 32-bit
                "pcm_f32le",  # float
                "pcm_f64le",  # float (double)
                "pcm_mulaw",  # G.711 μ-law
                "pcm_alaw",  # G.711 A-law
            }
        ),
        "flac": frozenset({"flac"}),
        "ogg": frozenset({"vorbis", "opus"}),
        "webm": frozenset({"opus"}),
    }
)

# How the accepted list reads in messages and in the README.
ACCEPTED_TEXT = (
    "WAV (PCM 16/24/32-bit, float, G.711 μ-law or A-law), FLAC, Ogg (Vorbis or Opus), WebM (Opus)"
)

# FFmpeg demuxers the decoder may use: the accepted containers, and the common formats that
# are recognised (so that they are named in the rejection, or converted) but not accepted.
# Anything else is "cannot be decoded as audio": no playlist or concat demuxer ever runs on an
# operator's file, so a file can never make FFmpeg open another one.
DEMUXERS = (
    *("wav", "flac", "ogg", "matroska"),  # accepted
    *("mp3", "mov", "aac", "amr", "aiff", "au", "caf", "w64"),  # named, or converted
)

# FFmpeg demuxer names (`AVInputFormat.name`) → the short name a person knows.
_CONTAINER_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "mov,mp4,m4a,3gp,3g2,mj2": "m4a",
        "matroska,webm": "matroska",  # told apart from WebM by its DocType, see container_name
    }
)

# Codec names as shown for the rejected containers whose name says less than the codec.
_SHOW_CODEC = frozenset({"m4a", "matroska", "ogg", "wav", "webm", "caf"})


def container_name(demuxer: str, webm_doctype: bool = False) -> str:
    """The short container name of an FFmpeg demuxer; `webm_doctype` tells WebM from Matroska."""
    name = _CONTAINER_NAMES.get(demuxer, demuxer)
    if name == "matroska" and webm_doctype:
        return "webm"
    return name


def format_label(container: str, codec: str) -> str:
    """How a person reads a format: `mp3`, `m4a (aac)`, `wav (pcm_u8)`."""
    if container in _SHOW_CODEC and codec:
        return f"{container} ({codec})"
    return container


def is_accepted(container: str, codec: str) -> bool:
    return codec in ACCEPTED.get(container, frozenset())


def format_problem(container: str, codec: str) -> str | None:
    """Why the API would refuse this format, or None when it accepts it."""
    if is_accepted(container, codec):
        return None
    return (
        f"format {format_label(container, codec)} is not accepted by the API "
        f"(accepted: {ACCEPTED_TEXT})"
    )
