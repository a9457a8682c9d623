"""The contract's small pure rules: handles, aliases, times, durations, the model table.

Owns: what a valid handle or alias is, how times and durations are written on the wire, the
voiceprint model table and the reason an audio fails a model. Pure: no I/O, no clock, no state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

HANDLE_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
HANDLE_MAX = 50
ALIAS_MAX = 100
MIN_TOTAL_VOICE_S = 4.5  # contract §3: computable once total voice reaches 4.5 s
MIN_AUDIOS_RANGE = (1, 20)


def handle_error(handle: object, what: str = "handle") -> str | None:
    """Why `handle` is not a valid handle, or None. Used for 400 messages."""
    if not isinstance(handle, str):
        return f"{what} must be a string"
    if not 1 <= len(handle) <= HANDLE_MAX:
        return f"{what} must be 1–{HANDLE_MAX} characters, got {len(handle)}"
    if not HANDLE_RE.match(handle):
        return (
            f"{what} {handle!r} is invalid: use lowercase letters and digits in groups "
            "separated by single hyphens"
        )
    return None


def alias_error(alias: object) -> str | None:
    """Why `alias` is not a valid alias (free text 1–100 chars, or null), or None."""
    if alias is None:
        return None
    if not isinstance(alias, str):
        return "alias must be a string or null"
    if not 1 <= len(alias) <= ALIAS_MAX:
        return f"alias must be 1–{ALIAS_MAX} characters, got {len(alias)}"
    return None


def format_time(moment: datetime) -> str:
    """ISO-8601 UTC with microseconds, as the contract writes every time."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """An ISO-8601 date-time from a query; naive values are taken as UTC. Raises ValueError."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace(" ", "+"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def format_duration(seconds: float | None) -> str | None:
    """Seconds → ISO-8601 duration with millisecond precision (`PT7.500S`)."""
    return None if seconds is None else f"PT{seconds:.3f}S"


@dataclass(frozen=True)
class Model:
    """A voiceprint model and its audio requirements (contract §3 table)."""

    handle: str
    version: str
    deprecated: bool
    max_duration_s: float
    min_sample_rate: int

    @property
    def name(self) -> str:
        return f"{self.handle}/{self.version}"

    def min_voice_per_audio(self, min_audios: int) -> float:
        return MIN_TOTAL_VOICE_S / min_audios

    def to_wire(self) -> dict[str, Any]:
        return {
            "handle": self.handle,
            "version": self.version,
            "deprecated": self.deprecated,
            "requirements": {
                "maxDuration": format_duration(self.max_duration_s),
                "minSampleRate": self.min_sample_rate,
                "minTotalVoiceDuration": format_duration(MIN_TOTAL_VOICE_S),
                "minVoiceDurationPerAudio": "4.5 s ÷ minAudios",
            },
        }


MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model("default", "v1", deprecated=True, max_duration_s=120.0, min_sample_rate=8000),
        Model("phone", "v1", deprecated=False, max_duration_s=120.0, min_sample_rate=8000),
        Model("digital", "v1", deprecated=False, max_duration_s=120.0, min_sample_rate=16000),
    )
}


def model_name(value: object) -> str | None:
    """The model as `"handle/version"`; the guide's `{handle, version}` object is accepted too."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("handle"), str):
        version = value.get("version")
        if isinstance(version, str):
            return f"{value['handle']}/{version}"
    return None


def requirement_failure(
    audio_handle: str,
    model: Model,
    min_audios: int,
    duration: float | None,
    sample_rate: int | None,
    voice_duration: float | None,
) -> str | None:
    """Why an audio cannot be added to a voiceprint of `model`, in words a person understands.

    None when it fits. Checked in the order a person would fix things: length, quality, voice.
    """
    who = f"audio {audio_handle}"
    if duration is None or sample_rate is None or voice_duration is None:
        return f"{who}: the file could not be decoded, so it cannot be used"
    if duration > model.max_duration_s:
        return (
            f"{who}: duration {duration:.1f} s is above the {model.max_duration_s:.0f} s "
            f"maximum of model {model.name}"
        )
    if sample_rate < model.min_sample_rate:
        return (
            f"{who}: sample rate {sample_rate} Hz is below the {model.min_sample_rate} Hz "
            f"model {model.name} needs"
        )
    need = model.min_voice_per_audio(min_audios)
    # Compare at the wire's millisecond precision so that what the client reads agrees.
    if round(voice_duration, 3) < round(need, 3):
        return (
            f"{who}: voice {voice_duration:.2f} s is below the {need:.2f} s this model needs "
            f"per audio ({MIN_TOTAL_VOICE_S} s ÷ minAudios {min_audios})"
        )
    return None
