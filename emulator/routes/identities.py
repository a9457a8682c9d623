"""Routes of the caller (sign-in, `GET /user`) and of identities (api-contract.md §3).

Owns: reading each request of these routes and answering it with one `State` call.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

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


class CredentialsBody(Body):
    handle: str = Field(min_length=1, max_length=50)
    password: str = Field(min_length=8, max_length=50)


class IdentityBody(Body):
    handle: str
    alias: str | None = None


async def sign_in(request: web.Request) -> web.Response:
    body = await read_body(request, CredentialsBody)
    answer = emu_of(request).state.sign_in(body.handle, body.password)
    await commit(request)
    return respond(answer)


async def get_user(request: web.Request) -> web.Response:
    state = emu_of(request).state
    return respond(state.user_wire(user_of(request)))


# --- identities ----------------------------------------------------------------------------


async def create_identity(request: web.Request) -> web.Response:
    state, _, sp = space_of(request)
    body = await read_body(request, IdentityBody)
    ident = state.create_identity(sp, body.handle, body.alias)
    emu_of(request).stats.created["identities"] += 1
    await commit(request)
    return respond(state.identity_wire(ident), status=201)


async def get_identity(request: web.Request) -> web.Response:
    state, _, sp = space_of(request)
    return respond(state.identity_wire(state.identity(sp, request.match_info["identity"])))


async def list_identities(request: web.Request) -> web.Response:
    state, _, sp = space_of(request)
    req = page_request(request, ["createdAt", "handle"])
    return page_of(state.list_identities(sp, req), state.identity_wire)
