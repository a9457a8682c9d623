"""The model's voice rule against a locally measured figure: enough, near, or clearly too little.

Owns: the verdict on one audio's locally measured voice (contract §3: 4.5 s of voice across a
voiceprint's audios, so each audio needs 4.5 s ÷ minAudios), the margin within which the
server's own detector decides instead (`ENROLLER_VOICE_MARGIN`), the sentences that say so, and
the report's record of the local figure (`LocalVoice`). Pure and light: no decoding (that is
`worker.audio.voice`), so the journal and the report can import it.

Why a margin: the local detector (WebRTC's VAD) and the service's are different detectors; a
file the local one finds a little short may still pass the server. Only a file clearly below
the rule is refused before upload; one near it is uploaded, and the report shows both figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

# A voiceprint needs this much voice in total, across its audios (contract §3 "Voiceprints").
MIN_TOTAL_VOICE_S = 4.5


class VoiceVerdict(StrEnum):
    ENOUGH = "enough"  # at or above the model's per-audio share
    NEAR = "near"  # below it, within the margin: uploaded, the server decides
    TOO_LITTLE = "too_little"  # below it by more than the margin: refused, nothing uploaded


class LocalVoice(BaseModel):
    """One audio's voice as measured locally, for the report beside the server's figure."""

    model_config = ConfigDict(frozen=True)

    audio: str  # as the manifest names it
    voice_s: float  # measured locally (WebRTC VAD)
    needed_s: float  # the model's per-audio share: 4.5 s ÷ minAudios
    verdict: VoiceVerdict


def voice_verdict(voice_s: float, needed_s: float, margin: float) -> VoiceVerdict:
    """Enough, near (within `margin` of `needed_s`, a fraction), or clearly too little."""
    if round(voice_s, 3) >= round(needed_s, 3):
        return VoiceVerdict.ENOUGH
    if voice_s >= needed_s * (1.0 - margin):
        return VoiceVerdict.NEAR
    return VoiceVerdict.TOO_LITTLE


def too_little_reason(
    voice_s: float, needed_s: float, model: str, min_audios: int, margin: float
) -> str:
    """Why a file is refused before upload, with the measured figure."""
    return (
        f"voice {voice_s:.2f} s (measured locally) is below the {needed_s:.2f} s that {model} "
        f"needs per audio ({MIN_TOTAL_VOICE_S} s ÷ minAudios {min_audios}), by more than the "
        f"{margin:.0%} margin (ENROLLER_VOICE_MARGIN): not uploaded"
    )


def near_warning(voice_s: float, needed_s: float, margin: float) -> str:
    """Why a file a little short is uploaded all the same."""
    return (
        f"voice {voice_s:.2f} s (measured locally) is within {margin:.0%} of the "
        f"{needed_s:.2f} s needed: uploaded, the server's detector decides"
    )


def with_local_voice(fields: dict[str, Any], local: Sequence[LocalVoice]) -> dict[str, Any]:
    """An outcome's fields with the local voice figures added.

    When the server refused for voice, its reason (which carries the server's figure) gets
    the local figures appended, so the failures CSV shows both side by side.
    """
    if not local:
        return fields
    out = dict(fields, local_voice=list(local))
    error = out.get("error")
    reason = getattr(error, "reason", None)
    if isinstance(error, BaseModel) and isinstance(reason, str) and "voice" in reason:
        figures = ", ".join(f"{v.audio} {v.voice_s:.2f} s" for v in local)
        update = {"reason": f"{reason} (voice measured locally: {figures})"}
        out["error"] = error.model_copy(update=update)
    return out
