"""Models and voiceprints (api-contract.md §3: Models, Voiceprints): create, read, list an
identity's voiceprints and a voiceprint's audios, add an audio, compute, rename, delete. (The
worker never verifies or removes an audio: tests do, through tests/api_calls.py.)

Owns: their routes, bodies and retry classes (compute is the billed call the governor may
refuse locally). Sending, retrying and parsing are the loop's (loop.py). Rename and delete
are [inferred]: a service without them answers 405 (`MethodNotAllowed`) or 404 on the route,
and the caller takes another way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from worker.api.checks import check_about
from worker.api.errors import InvalidResponse, OutcomeUnknown
from worker.api.loop import RequestLoop
from worker.api.retry_rules import Retry
from worker.api.schemas import (
    Audio,
    Model,
    Voiceprint,
    VoiceprintCreate,
    VoiceprintPatch,
)

VOICEPRINT = "/spaces/{owner}/{space}/voiceprints/{identity}/{voiceprint}"


def facts(vp: Voiceprint) -> dict[str, object]:
    """What a voiceprint answer says it is about (checks.py compares it with the question)."""
    return {
        "handle": vp.handle,
        "identity": vp.identity.handle,
        "model": vp.model,
        "audios": vp.audios,
    }


class VoiceprintsApi:
    """The model and voiceprint methods, sent through the loop it is given.

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
        vp = self._loop.parse(answer, Voiceprint, "POST", route)
        asked = {"handle": handle, "identity": identity, "model": model}
        check_about(asked, facts(vp), method="POST", route=route)
        return vp

    async def get_voiceprint(
        self, owner: str, space: str, identity: str, voiceprint: str
    ) -> Voiceprint:
        """Read a voiceprint (SAFE); an answer about another one is an `InvalidResponse`."""
        vp = await self._loop.get(
            VOICEPRINT,
            Voiceprint,
            owner=owner,
            space=space,
            identity=identity,
            voiceprint=voiceprint,
        )
        check_about(
            {"handle": voiceprint, "identity": identity}, facts(vp), method="GET", route=VOICEPRINT
        )
        return vp

    def list_identity_voiceprints(
        self, owner: str, space: str, identity: str, *, page_size: int = 50
    ) -> AsyncIterator[Voiceprint]:
        """Every voiceprint of an identity, page after page (SAFE reads)."""
        return self._loop.paginate(
            "/spaces/{owner}/{space}/identities/{identity}/voiceprints",
            Voiceprint,
            {"owner": owner, "space": space, "identity": identity},
            page_size=page_size,
        )

    async def rename_voiceprint(
        self,
        owner: str,
        space: str,
        identity: str,
        voiceprint: str,
        *,
        handle: str | None = None,
        alias: str | None = None,
    ) -> Voiceprint:
        """Give a voiceprint a new `handle` and/or `alias` (`PATCH`, [inferred]); only the
        fields given are sent. The voiceprint stays itself: state, audios, computedAt.

        UNSAFE: after an unknown outcome a repeat would answer `NotFound` (the old handle is
        gone) and look like a failure, so the caller settles it by reading both handles.
        `Conflict`: the handle is another voiceprint's of the identity. `MethodNotAllowed` (or
        `NotFound` on the route): the API offers no rename. `ValueError` before anything is
        sent when neither field is given.
        """
        body = VoiceprintPatch(handle=handle, alias=alias).to_wire()
        path = {"owner": owner, "space": space, "identity": identity, "voiceprint": voiceprint}
        answer = await self._loop.call(
            "PATCH", VOICEPRINT, path=path, json=body, retry=Retry.UNSAFE
        )
        vp = self._loop.parse(answer, Voiceprint, "PATCH", VOICEPRINT)
        asked = {"handle": handle or voiceprint, "identity": identity}
        check_about(asked, facts(vp), method="PATCH", route=VOICEPRINT)
        return vp

    async def delete_voiceprint(
        self, owner: str, space: str, identity: str, voiceprint: str
    ) -> None:
        """Delete a voiceprint (204, [inferred]); its audios and usage records stay.

        UNSAFE: after an unknown outcome a repeat would answer `NotFound` whether the first
        attempt deleted it or the voiceprint never was, so the caller settles it by reading.
        `NotFound`: no such voiceprint. `MethodNotAllowed`: the API offers no delete.
        """
        path = {"owner": owner, "space": space, "identity": identity, "voiceprint": voiceprint}
        await self._loop.call("DELETE", VOICEPRINT, path=path, retry=Retry.UNSAFE)

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
        route = "/spaces/{owner}/{space}/voiceprints/{identity}/{voiceprint}/audios/{audio}"
        path = {"owner": owner, "space": space, "identity": identity, "voiceprint": voiceprint}
        answer = await self._loop.call("POST", route, path={**path, "audio": audio})
        vp = self._loop.parse(answer, Voiceprint, "POST", route)
        check_about(
            {"handle": voiceprint, "identity": identity}, facts(vp), method="POST", route=route
        )
        return vp

    async def compute_voiceprint(
        self,
        owner: str,
        space: str,
        identity: str,
        voiceprint: str,
        *,
        model: str | None = None,
        audios: int | None = None,
    ) -> Voiceprint:
        """Compute a `computable` voiceprint: the billed, irreversible step.

        Sent once: a timeout, a lost or unusable answer raises `OutcomeUnknown` without a
        resend, because only a read of the voiceprint says whether the billed call took effect
        (a repeat would answer `Conflict` at best). An answer about another voiceprint, or
        with another `model` or `audios` count than given, is an `OutcomeUnknown` too, never
        a validation. Refused locally with `CreditsExhausted(sent=False)` while the governor is
        in the credits-exhausted state.
        """
        route = "/spaces/{owner}/{space}/voiceprints/{identity}/{voiceprint}:compute"
        path = {"owner": owner, "space": space, "identity": identity, "voiceprint": voiceprint}
        answer = await self._loop.call("POST", route, path=path, compute=True, retry=Retry.UNSAFE)
        try:
            vp = self._loop.parse(answer, Voiceprint, "POST", route)
        except InvalidResponse as exc:  # a 200 that says nothing usable: the effect is unknown
            raise OutcomeUnknown(
                exc.message, kind="unreadable", method="POST", route=route
            ) from None
        asked = {"handle": voiceprint, "identity": identity, "model": model, "audios": audios}
        check_about(asked, facts(vp), method="POST", route=route)
        return vp
