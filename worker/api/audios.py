"""Audios (api-contract.md §3, Audios): create (inline or awaiting a file), upload, read, list,
find by alias.

Owns: their routes, bodies and retry class (an audio create is UNSAFE: the server picks the
handle). Sending, retrying and parsing are the loop's (loop.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.to_thread

from worker.api.checks import check_about
from worker.api.inline import InlineAudioBody
from worker.api.loop import RequestLoop
from worker.api.retry_rules import Retry
from worker.api.schemas import Audio, AudioCreate
from worker.audio.files import VerifiedUpload


def facts(audio: Audio) -> dict[str, object]:
    """What an audio answer says it is about (checks.py compares it with the question)."""
    linked = audio.identity.handle if audio.identity is not None else None
    return {"handle": audio.handle, "alias": audio.alias, "identity": linked}


class AudiosApi:
    """The audio methods, sent through the loop it is given; `ApiClient` exposes them."""

    def __init__(self, loop: RequestLoop) -> None:
        self._loop = loop

    async def create_audio(
        self,
        owner: str,
        space: str,
        *,
        alias: str | None = None,
        identity: str | None = None,
        file: VerifiedUpload | None = None,
    ) -> Audio:
        """Create an audio; the server picks the handle. Without `file` it awaits its file
        (`avaitingFile`); with one, the bytes go inline as base64, streamed inside the upload
        cap (`InlineAudioBody`): one request instead of create + raw upload.

        UNSAFE: a repeat would create a second audio. A timeout, reset or 5xx raises
        `OutcomeUnknown` without a retry: find the audio by its alias before creating again.
        A file changed since preflight raises `AudioUnreadable` before the body is complete.
        """
        route = "/spaces/{owner}/{space}/audios"
        fields = AudioCreate(alias=alias, identity=identity).to_wire()
        answer = await self._loop.call(
            "POST",
            route,
            path={"owner": owner, "space": space},
            json=fields if file is None else None,
            file=InlineAudioBody(file, fields) if file is not None else None,
            retry=Retry.UNSAFE,
        )
        audio = self._loop.parse(answer, Audio, "POST", route)
        asked = {"alias": alias, "identity": identity}
        check_about(asked, facts(audio), method="POST", route=route)
        return audio

    async def upload_audio_file(
        self, owner: str, space: str, audio: str, file: VerifiedUpload | Path
    ) -> Audio:
        """Stream a file's raw bytes to an audio in `avaitingFile`, inside the upload cap.

        SAFE: an audio takes one file; a repeat after success answers `Conflict`
        (`after_unknown_outcome` set when an earlier attempt's outcome was unknown): GET the
        audio to confirm it is `available`. `PayloadTooLarge` is permanent.
        """
        route = "/spaces/{owner}/{space}/audios/{audio}/file"
        if isinstance(file, Path):  # no preflight measured it: measure it now
            file = await anyio.to_thread.run_sync(VerifiedUpload.from_path, file)
        answer = await self._loop.call(
            "POST", route, path={"owner": owner, "space": space, "audio": audio}, file=file
        )
        got = self._loop.parse(answer, Audio, "POST", route)
        check_about({"handle": audio}, facts(got), method="POST", route=route)
        return got

    async def get_audio(self, owner: str, space: str, audio: str) -> Audio:
        """Read an audio (SAFE); an answer about another one is an `InvalidResponse`."""
        route = "/spaces/{owner}/{space}/audios/{audio}"
        got = await self._loop.get(route, Audio, owner=owner, space=space, audio=audio)
        check_about({"handle": audio}, facts(got), method="GET", route=route)
        return got

    def list_audios(
        self,
        owner: str,
        space: str,
        *,
        search: str | None = None,
        sort: str | None = None,
        page_size: int = 50,
    ) -> AsyncIterator[Audio]:
        """Every audio of a space whose handle or alias contains `search`."""
        return self._loop.paginate(
            "/spaces/{owner}/{space}/audios",
            Audio,
            {"owner": owner, "space": space},
            search=search,
            sort=sort,
            page_size=page_size,
        )

    async def find_audios_by_alias(self, owner: str, space: str, alias: str) -> list[Audio]:
        """Audios whose alias is exactly `alias` (search is a substring match), oldest first.

        This is how an audio create with an unknown outcome is reconciled.
        """
        found = [
            a
            async for a in self.list_audios(owner, space, search=alias, sort="createdAt")
            if a.alias == alias
        ]
        return found
