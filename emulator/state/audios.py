"""Audios of a space: create, receive the file (decoded beforehand, see audio.py), link to an
identity, read, list, render; their state machine (avaitingFile → available / notAvailable).
"""

from __future__ import annotations

from typing import Any

from emulator.audio import Analysis
from emulator.pagination import PageRequest, PageResult
from emulator.processing import Kind
from emulator.records import (
    Audio,
    Space,
    bad_request,
    conflict,
    not_found,
)
from emulator.rules import (
    alias_error,
    format_duration,
    format_time,
    handle_error,
)
from emulator.state.identities import Identities
from emulator.state.world import paginate_or_400


class Audios(Identities):
    """The audios operations of `State`."""

    # --- audios ----------------------------------------------------------------------------

    def check_new_audio(self, sp: Space, alias: Any, identity: Any) -> None:
        """Everything `create_audio` would refuse, checked before any upload is decoded."""
        problem = alias_error(alias)
        if problem:
            raise bad_request(problem)
        if identity is not None:
            if not isinstance(identity, str):
                raise bad_request("identity must be a handle")
            self.identity(sp, identity)

    def create_audio(
        self,
        sp: Space,
        alias: Any,
        identity: Any,
        analysis: Analysis | None = None,
        size: int | None = None,
    ) -> Audio:
        """A new audio; with `analysis` it already holds its file (the base64 form)."""
        self.check_new_audio(sp, alias, identity)
        audio = Audio(self._id(), self._new_handle(sp.audios), alias, self.clock())
        sp.audios[audio.handle] = audio
        if identity is not None:
            self._link(sp, audio, identity)
        if analysis is not None:
            self.attach_file(sp, audio.handle, analysis, size or 0)
        return audio

    def audio(self, sp: Space, handle: str) -> Audio:
        found = sp.audios.get(handle)
        if found is None:
            raise not_found(f"audio {handle} not found in {sp.owner}/{sp.handle}")
        return found

    def check_awaiting_file(self, sp: Space, handle: str) -> Audio:
        audio = self.audio(sp, handle)
        if audio.state != "avaitingFile" or audio.ready_state is not None:
            raise conflict(f"audio {handle} already has a file; an audio takes exactly one")
        return audio

    def attach_file(self, sp: Space, handle: str, analysis: Analysis, size: int) -> Audio:
        """Store a file's measurements; the second file for one audio is a 409."""
        audio = self.check_awaiting_file(sp, handle)
        audio.size = size
        audio.uploaded_at = now = self.clock()
        if analysis.decodable:
            ready = "available"
            audio.duration = analysis.duration
            audio.voice_duration = analysis.voice_duration
            audio.sample_rate = analysis.sample_rate
            audio.channels = analysis.channels
            audio.format = analysis.format
        else:
            ready = "notAvailable"
        if self.processing.delayed(Kind.FILE):
            audio.ready_state = ready  # still reads avaitingFile until then
            audio.ready_at = self.processing.schedule(
                Kind.FILE, f"{sp.owner}/{sp.handle}", handle, now
            )
        else:
            audio.state = ready
        return audio

    def _link(self, sp: Space, audio: Audio, identity: str) -> None:
        audio.identity = identity
        sp.identities[identity].audios += 1

    def identify_audio(self, sp: Space, handle: str, identity: Any) -> Audio:
        """Link an audio to an identity, irreversibly: relinking elsewhere is a 409."""
        problem = handle_error(identity, "identity")
        if problem:
            raise bad_request(problem)
        audio = self.audio(sp, handle)
        self.identity(sp, identity)
        if audio.identity is None:
            self._link(sp, audio, identity)
        elif audio.identity != identity:
            raise conflict(f"audio {handle} is already linked to identity {audio.identity}")
        return audio

    def audio_wire(self, sp: Space, audio: Audio) -> dict[str, Any]:
        ident = sp.identities.get(audio.identity) if audio.identity else None
        measured = audio.state != "avaitingFile"  # nothing is known while still processing
        return {
            "id": audio.id,
            "handle": audio.handle,
            "alias": audio.alias,
            "state": audio.state,
            "duration": format_duration(audio.duration if measured else None),
            "voiceDuration": format_duration(audio.voice_duration if measured else None),
            "sampleRate": audio.sample_rate if measured else None,
            "identity": {"handle": ident.handle, "alias": ident.alias} if ident else None,
            "voiceprints": audio.voiceprints,
            "verifications": audio.verifications,
            "createdAt": format_time(audio.created_at),
            "uploadedAt": format_time(audio.uploaded_at) if audio.uploaded_at else None,
        }

    def list_audios(self, sp: Space, req: PageRequest) -> PageResult[Audio]:
        fields = {"handle": "handle", "createdAt": "created_at", "uploadedAt": "uploaded_at"}
        return paginate_or_400(
            sp.audios.values(),
            req,
            sort_value=lambda it, key: getattr(it, fields[key]),
            texts=lambda it: (it.handle, it.alias),
            date=lambda it: it.created_at,
        )
