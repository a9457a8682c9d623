"""API calls that only tests make: the rest of the contract, sent through the worker's own
request loop (`ApiClient.requests`), so they are paced, retried and parsed as the worker's own.

The worker never links an audio by hand, removes an audio from a voiceprint or verifies: tests
do, to see what a run left on the server and to prove the emulator keeps the contract. (The
lists of a space's identities and of an identity's voiceprints are the client's own:
`ApiClient.list_identities`, `ApiClient.list_identity_voiceprints`.)
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from worker.api.client import ApiClient
from worker.api.retry_rules import Retry
from worker.api.schemas import ApiModel, Audio, ModelName, RefLike, Voiceprint


class VerificationState(StrEnum):
    """What a verification's `state` may say (contract §3, Identity verifications)."""

    PERFORMING = "performing"
    PERFORMED = "performed"
    PERFORMED_WITHOUT_SCORE = "performedWithoutScore"
    ERROR = "error"


class Verification(ApiModel):
    id: str | None = None
    handle: str
    state: str  # a VerificationState value; kept as text so a new state does not break us
    model: ModelName | None = None
    audio: RefLike | None = None
    voiceprint: RefLike | None = None
    score: float | None = None
    created_at: datetime | None = None
    performed_at: datetime | None = None


class AudioIdentify(ApiModel):
    identity: str


class VerificationCreate(ApiModel):
    audio: str
    identity: str
    voiceprint: str
    alias: str | None = None


async def identify_audio(
    client: ApiClient, owner: str, space: str, audio: str, identity: str
) -> Audio:
    """Link an audio to an identity (irreversible). SAFE: relinking the same is a no-op."""
    route = "/spaces/{owner}/{space}/audios/{audio}:identify"
    path = {"owner": owner, "space": space, "audio": audio}
    body = AudioIdentify(identity=identity).to_wire()
    answer = await client.requests.call("POST", route, path=path, json=body)
    return client.requests.parse(answer, Audio, "POST", route)


async def remove_audio_from_voiceprint(
    client: ApiClient, owner: str, space: str, identity: str, voiceprint: str, audio: str
) -> Voiceprint:
    """Remove an added audio. SAFE: a repeat answers `NotFound` (no longer added)."""
    route = "/spaces/{owner}/{space}/voiceprints/{identity}/{voiceprint}/audios/{audio}"
    path = {"owner": owner, "space": space, "identity": identity, "voiceprint": voiceprint}
    answer = await client.requests.call("DELETE", route, path={**path, "audio": audio})
    return client.requests.parse(answer, Voiceprint, "DELETE", route)


async def create_verification(
    client: ApiClient,
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
    body = VerificationCreate(audio=audio, identity=identity, voiceprint=voiceprint, alias=alias)
    answer = await client.requests.call(
        "POST",
        route,
        path={"owner": owner, "space": space},
        json=body.to_wire(),
        retry=Retry.UNSAFE,
    )
    return client.requests.parse(answer, Verification, "POST", route)
