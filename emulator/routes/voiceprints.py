"""Routes of models, voiceprints and verifications (api-contract.md §3): create, read, list,
rename, delete, add and remove audios, compute, verify.

Owns: reading these requests and answering each with `State` calls; no rule of its own but
which of the two [inferred] routes (rename, delete) this emulator offers: one taken away
(`--no-voiceprint-rename`, `--no-voiceprint-delete`) answers 405 with `Allow`, as a service
without it would.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from emulator.records import ApiError
from emulator.routes.common import (
    Body,
    commit,
    emu_of,
    page_of,
    page_request,
    read_body,
    respond,
    space_of,
    user_of,
)
from emulator.rules import model_name
from emulator.state import State
from emulator.state.lifecycle import UNSET


class ModelObject(Body):
    handle: str
    version: str


class VoiceprintBody(Body):
    identity: str
    model: str | ModelObject
    min_audios: int = Field(alias="minAudios", strict=True)
    handle: str | None = None
    alias: str | None = None


class VoiceprintPatchBody(Body):
    """`{handle?, alias?}`: a field not sent is left as it is (`model_fields_set` tells)."""

    handle: str | None = None
    alias: str | None = None


class VerificationBody(Body):
    audio: str
    identity: str
    voiceprint: str
    alias: str | None = None


async def get_models(request: web.Request) -> web.Response:
    user_of(request)
    return respond([m.to_wire() for m in State.models()])


async def create_voiceprint(request: web.Request) -> web.Response:
    state, _, sp = space_of(request)
    body = await read_body(request, VoiceprintBody)
    model = body.model if isinstance(body.model, str) else model_name(body.model.model_dump())
    vp = state.create_voiceprint(sp, body.identity, model, body.min_audios, body.handle, body.alias)
    emu_of(request).stats.created["voiceprints"] += 1
    await commit(request)
    return respond(state.voiceprint_wire(sp, vp), status=201)


async def get_voiceprint(request: web.Request) -> web.Response:
    state, _, sp = space_of(request)
    mi = request.match_info
    return respond(
        state.voiceprint_wire(sp, state.voiceprint(sp, mi["identity"], mi["voiceprint"]))
    )


def _offered(request: web.Request, method: str) -> None:
    """405 when this emulator was started without the voiceprint route of `method`."""
    options = emu_of(request).options
    missing = {"PATCH": options.no_voiceprint_rename, "DELETE": options.no_voiceprint_delete}
    if missing[method]:
        allow = ["GET", "HEAD", *(m for m in ("PATCH", "DELETE") if not missing[m])]
        raise ApiError(
            405,
            f"method {method} is not allowed on a voiceprint here",
            headers={"Allow": ", ".join(allow)},
        )


async def rename_voiceprint(request: web.Request) -> web.Response:
    _offered(request, "PATCH")
    state, _, sp = space_of(request)
    body = await read_body(request, VoiceprintPatchBody)
    given = body.model_fields_set
    mi = request.match_info
    vp = state.rename_voiceprint(
        sp,
        mi["identity"],
        mi["voiceprint"],
        new_handle=body.handle if "handle" in given else UNSET,
        alias=body.alias if "alias" in given else UNSET,
    )
    emu_of(request).stats.lifecycle["renamed"] += 1
    await commit(request)
    return respond(state.voiceprint_wire(sp, vp))


async def delete_voiceprint(request: web.Request) -> web.Response:
    _offered(request, "DELETE")
    state, _, sp = space_of(request)
    mi = request.match_info
    state.delete_voiceprint(sp, mi["identity"], mi["voiceprint"])
    emu_of(request).stats.lifecycle["deleted"] += 1
    await commit(request)
    return web.Response(status=204)


async def list_voiceprints(request: web.Request) -> web.Response:
    state, _, sp = space_of(request)
    req = page_request(request, ["createdAt", "handle", "computedAt"])
    result = state.list_voiceprints(sp, request.match_info["identity"], req)
    return page_of(result, lambda v: state.voiceprint_wire(sp, v))


async def list_voiceprint_audios(request: web.Request) -> web.Response:
    state, _, sp = space_of(request)
    mi = request.match_info
    req = page_request(request, ["createdAt", "handle", "uploadedAt"])
    result = state.list_voiceprint_audios(sp, mi["identity"], mi["voiceprint"], req)
    return page_of(result, lambda a: state.audio_wire(sp, a))


async def add_audio(request: web.Request) -> web.Response:
    return await _change_membership(request, add=True)


async def remove_audio(request: web.Request) -> web.Response:
    return await _change_membership(request, add=False)


async def _change_membership(request: web.Request, *, add: bool) -> web.Response:
    """One route, two verbs: an audio added to or removed from a voiceprint."""
    state, _, sp = space_of(request)
    mi = request.match_info
    change = state.add_audio if add else state.remove_audio
    vp = change(sp, mi["identity"], mi["voiceprint"], mi["audio"])
    await commit(request)
    return respond(state.voiceprint_wire(sp, vp))


async def compute(request: web.Request) -> web.Response:
    emu = emu_of(request)
    state, user, sp = space_of(request)
    mi = request.match_info
    try:
        vp = state.compute(sp, mi["identity"], mi["voiceprint"], user)
    except ApiError as exc:
        if exc.status == 429:
            emu.stats.credit_refusals += 1
        raise
    emu.stats.created["computes"] += 1
    await commit(request)
    return respond(state.voiceprint_wire(sp, vp))


async def create_verification(request: web.Request) -> web.Response:
    state, _, sp = space_of(request)
    body = await read_body(request, VerificationBody)
    ver = state.create_verification(sp, body.audio, body.identity, body.voiceprint, body.alias)
    await commit(request)
    return respond(state.verification_wire(sp, ver), status=201)
