"""Models, voiceprints and verifications (api-contract.md §3: Models, Voiceprints, Identity
verifications): create, read, list, add and remove audios, compute, verify.

Owns: their routes, bodies and retry classes (compute is the billed call the governor may
refuse locally). Sending, retrying and parsing are the loop's (loop.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from worker.api.loop import RequestLoop
from worker.api.retry_rules import Retry
from worker.api.schemas import (
    Audio,
    Model,
    Verification,
    VerificationCreate,
    Voiceprint,
    VoiceprintCreate,
)


class VoiceprintsApi:
    """The model, voiceprint and verification methods, sent through the loop it is given.

    `ApiClient` exposes them.
    """

    def __init__(self, loop: RequestLoop) -> None:
        self._loop = loop

    async def list_models(self) -> list[Model]:
        """`GET /models` (emulator; the real service has no such list). SAFE."""
        answer = await self._loop.call("GET", "/models")
        return self._loop.parse_list(answer, Model, "GET", "/models")

    # --- voiceprints ------------------------------------------------------------------------

    async def create_voiceprint(
        self,
        owner: str,
        space: str,
        identity: str,
        model: str,
        *,
        min_audios: int = 1,
        handle: str | None = None,
        alias: str | None = None,
    ) -> Voiceprint:
        """Create a voiceprint in `notComputable`; `model` is `"handle/version"`.

        SAFE with a `handle` (a repeat answers `Conflict`: GET it); UNSAFE without one, since
        the server would then assign a second handle.
        """
        route = "/spaces/{owner}/{space}/voiceprints"
        body = VoiceprintCreate(
            identity=identity, model=model, min_audios=min_audios, handle=handle, alias=alias
        ).to_wire()
        answer = await self._loop.call(
            "POST",
            route,
            path={"owner": owner, "space": space},
            json=body,
            retry=Retry.SAFE if handle else Retry.UNSAFE,
        )
        return self._loop.parse(answer, Voiceprint, "POST", route)

    async def get_voiceprint(
        self, owner: str, space: str, identity: str, voiceprint: str
    ) -> Voiceprint:
        """Read a voiceprint (SAFE)."""
        return await self._loop.get(
            "/spaces/{owner}/{space}/voiceprints/{identity}/{voiceprint}",
            Voiceprint,
            owner=owner,
            space=space,
            identity=identity,
            voiceprint=voiceprint,
        )

    def list_voiceprints(
        self,
        owner: str,
        space: str,
        identity: str,
        *,
        sort: str | None = None,
        page_size: int = 50,
    ) -> AsyncIterator[Voiceprint]:
        """Every voiceprint of an identity."""
        return self._loop.paginate(
            "/spaces/{owner}/{space}/identities/{identity}/voiceprints",
            Voiceprint,
            {"owner": owner, "space": space, "identity": identity},
            sort=sort,
            page_size=page_size,
        )

    def list_voiceprint_audios(
        self, owner: str, space: str, identity: str, voiceprint: str, *, page_size: int = 50
    ) -> AsyncIterator[Audio]:
        """Every audio added to a voiceprint."""
        return self._loop.paginate(
            "/spaces/{owner}/{space}/voiceprints/{identity}/{voiceprint}/audios",
            Audio,
            {"owner": owner, "space": space, "identity": identity, "voiceprint": voiceprint},
            page_size=page_size,
        )

    async def add_audio_to_voiceprint(
        self, owner: str, space: str, identity: str, voiceprint: str, audio: str
    ) -> Voiceprint:
        """Add an available audio. SAFE: a repeat answers `Conflict` (already added).

        `Unprocessable` carries the model's reason the audio does not qualify.
        """
        return await self._voiceprint_audio("POST", owner, space, identity, voiceprint, audio)

    async def remove_audio_from_voiceprint(
        self, owner: str, space: str, identity: str, voiceprint: str, audio: str
    ) -> Voiceprint:
        """Remove an added audio. SAFE: a repeat answers `NotFound` (no longer added)."""
        return await self._voiceprint_audio("DELETE", owner, space, identity, voiceprint, audio)

    async def _voiceprint_audio(
        self, method: str, owner: str, space: str, identity: str, voiceprint: str, audio: str
    ) -> Voiceprint:
        """One audio of a voiceprint, added (POST) or removed (DELETE): one route, two verbs."""
        route = "/spaces/{owner}/{space}/voiceprints/{identity}/{voiceprint}/audios/{audio}"
        path = {
            "owner": owner,
            "space": space,
            "identity": identity,
            "voiceprint": voiceprint,
            "audio": audio,
        }
        answer = await self._loop.call(method, route, path=path)
        return self._loop.parse(answer, Voiceprint, method, route)

    async def compute_voiceprint(
        self, owner: str, space: str, identity: str, voiceprint: str
    ) -> Voiceprint:
        """Compute a `computable` voiceprint: the billed, irreversible step.

        SAFE: computed once, a repeat answers `Conflict` (GET it). Refused locally with
        `CreditsExhausted(sent=False)` while the governor is in the credits-exhausted state.
        """
        route = "/spaces/{owner}/{space}/voiceprints/{identity}/{voiceprint}:compute"
        path = {"owner": owner, "space": space, "identity": identity, "voiceprint": voiceprint}
        answer = await self._loop.call("POST", route, path=path, compute=True)
        return self._loop.parse(answer, Voiceprint, "POST", route)

    # --- verifications ----------------------------------------------------------------------

    async def create_verification(
        self,
        owner: str,
        space: str,
        *,
        audio: str,
        identity: str,
        voiceprint: str,
        alias: str | None = None,
    ) -> Verification:
        """Verify an audio against a computed voiceprint. UNSAFE (server-assigned handle)."""
        route = "/spaces/{owner}/{space}/verifications/identity"
        body = VerificationCreate(
            audio=audio, identity=identity, voiceprint=voiceprint, alias=alias
        ).to_wire()
        answer = await self._loop.call(
            "POST", route, path={"owner": owner, "space": space}, json=body, retry=Retry.UNSAFE
        )
        return self._loop.parse(answer, Verification, "POST", route)
