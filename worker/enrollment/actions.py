"""What an enrollment can do next: one frozen value per action; or `Done` (from `view.py`).

Owns: the actions `rules.decide` returns and the async driver (`driver.py`) performs, the
`Action` union of them and `Done`, and how a report names one (`action_key`) when it is part
of a loop. Plain data.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.enrollment.view import Done, VoiceprintSeen
from worker.journal.records import Step


@dataclass(frozen=True)
class GetVoiceprint:
    step: Step = Step.VOICEPRINT


@dataclass(frozen=True)
class ListVoiceprintAudios:
    """Read which audios a voiceprint holds (their sha256 aliases)."""

    step: Step = Step.VOICEPRINT


@dataclass(frozen=True)
class EnsureIdentity:
    create: bool
    step: Step = Step.IDENTITY


@dataclass(frozen=True)
class FindAudio:
    """Find the audio made from file `sha` (journal, process, `sha256:` alias). `lost`: the
    handle the server lost (an add's 404), forgotten first; that find is the add's step."""

    sha: str
    lost: str | None = None
    step: Step = Step.AUDIO


@dataclass(frozen=True)
class CreateAudio:
    sha: str
    step: Step = Step.AUDIO


@dataclass(frozen=True)
class UploadFile:
    sha: str
    handle: str
    step: Step = Step.UPLOAD


@dataclass(frozen=True)
class AwaitAudio:
    """Wait `delay` seconds, then read an audio the server is still processing."""

    sha: str
    handle: str
    delay: float
    step: Step = Step.UPLOAD


@dataclass(frozen=True)
class CreateVoiceprint:
    step: Step = Step.CREATE_VOICEPRINT


@dataclass(frozen=True)
class AddAudio:
    sha: str
    handle: str
    step: Step = Step.ADD_AUDIO


@dataclass(frozen=True)
class Compute:
    step: Step = Step.COMPUTE


@dataclass(frozen=True)
class AwaitCompute:
    """Wait `delay` seconds, then read a voiceprint whose compute the server is processing."""

    delay: float
    step: Step = Step.COMPUTE


@dataclass(frozen=True)
class Validate:
    step: Step = Step.VALIDATE


@dataclass(frozen=True)
class Replace:
    """The voiceprint is computed and differs from the manifest, and `existing: overwrite`
    asks for a new one: the driver hands it to the swap (`swap.py`), which builds the new one
    and switches it in. `old`: the voiceprint as read; `held`: its audios (sha256, "?handle"
    for audios not uploaded by us); `differs`: what differs, for the report."""

    old: VoiceprintSeen
    held: tuple[str, ...]
    differs: str
    handles: tuple[str, ...] = ()  # a migration's: each held audio's handle, in `held` order
    step: Step = Step.VOICEPRINT


Action = (
    GetVoiceprint
    | ListVoiceprintAudios
    | EnsureIdentity
    | FindAudio
    | CreateAudio
    | UploadFile
    | AwaitAudio
    | CreateVoiceprint
    | AddAudio
    | Compute
    | AwaitCompute
    | Validate
    | Replace
    | Done
)


def action_key(action: Action) -> tuple[Step, str]:
    """How a report names an action in a loop: its step and what it was about."""
    handle = getattr(action, "handle", None)
    name = {
        GetVoiceprint: "get voiceprint",
        ListVoiceprintAudios: "list voiceprint audios",
        EnsureIdentity: "identity",
        FindAudio: "find audio",
        CreateAudio: "create audio",
        UploadFile: "upload",
        AwaitAudio: "wait for audio",
        CreateVoiceprint: "create voiceprint",
        AddAudio: "add audio",
        Compute: "compute",
        AwaitCompute: "wait for compute",
        Validate: "validate",
        Replace: "replace",
    }.get(type(action), type(action).__name__)
    return (action.step or Step.VOICEPRINT, f"{name} {handle}" if handle else name)
