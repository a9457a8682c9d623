"""The reads an enrollment learns the truth from, as the values the rules decide on.

Owns: turning API resources into `VoiceprintSeen` / `AudioSeen`, and the GETs and listings of
one enrollment's voiceprint and audios (404 read as "absent"). No decisions, no journal.
"""

from __future__ import annotations

from worker.api import errors
from worker.api.client import ApiClient
from worker.api.schemas import Audio, Voiceprint
from worker.enrollment.task import ALIAS_PREFIX, EnrollmentTask
from worker.enrollment.view import ABSENT, Absent, AudioSeen, VoiceprintSeen


def seen(vp: Voiceprint) -> VoiceprintSeen:
    return VoiceprintSeen(
        state=vp.state.value,  # type: ignore[arg-type]
        model=vp.model,
        audio_count=vp.audios,
        total_voice_s=vp.total_voice_duration,
        id=vp.id,
        min_audios=vp.min_audios,
    )


def audio_seen(audio: Audio, received: bool = False) -> AudioSeen:
    """An audio as the rules see it; `received` if we know the server has its file."""
    return AudioSeen(
        audio.handle,
        audio.state.value,  # type: ignore[arg-type]
        received=received or audio.uploaded_at is not None,
        identity=audio.identity.handle if audio.identity is not None else None,
    )


class Reads:
    """The reads of one enrollment; `last_voiceprint` is the latest voiceprint answered."""

    def __init__(self, task: EnrollmentTask, client: ApiClient) -> None:
        self.task = task
        self.client = client
        self.last_voiceprint: Voiceprint | None = None

    async def voiceprint(self) -> VoiceprintSeen | Absent:
        t = self.task
        try:
            vp = await self.client.get_voiceprint(t.owner, t.space, t.identity, t.voiceprint)
        except errors.NotFound:
            return ABSENT
        self.last_voiceprint = vp
        return seen(vp)

    async def audio(self, handle: str) -> AudioSeen | Absent:
        try:
            audio = await self.client.get_audio(self.task.owner, self.task.space, handle)
        except errors.NotFound:
            return ABSENT
        return audio_seen(audio)

    async def held(self) -> tuple[str, ...]:
        """The sha256 of every audio the voiceprint holds, repeats kept ("?h": not ours)."""
        return tuple(sorted(listing_key(audio) for audio in await self.held_audios()))

    async def held_audios(self) -> list[Audio]:
        """Every audio the voiceprint holds, as listed; none when it is gone."""
        t = self.task
        try:
            return [
                audio
                async for audio in self.client.list_voiceprint_audios(
                    t.owner, t.space, t.identity, t.voiceprint
                )
            ]
        except errors.NotFound:
            return []


def listing_key(audio: Audio) -> str:
    """How the rules name an audio a voiceprint holds: the sha256 of our file (its alias), or
    "?handle" for an audio not uploaded by this worker (never equal to a file's)."""
    if audio.alias and audio.alias.startswith(ALIAS_PREFIX):
        return audio.alias.removeprefix(ALIAS_PREFIX)
    return f"?{audio.handle}"
