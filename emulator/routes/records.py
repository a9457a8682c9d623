"""Routes of what is billed: usage records (api-contract.md §3) and an owner's credits (ours).

Owns: reading these requests and answering each with `State` calls; no rule of its own.
"""

from __future__ import annotations

from aiohttp import web

from emulator.records import ApiError
from emulator.routes.common import (
    emu_of,
    page_of,
    page_request,
    respond,
    user_of,
)


async def org_records(request: web.Request) -> web.Response:
    state = emu_of(request).state
    user = user_of(request)
    req = page_request(request, ["computedAt"], searchable=False)
    return page_of(state.org_records(user, request.match_info["org"], req), state.record_wire)


async def user_records(request: web.Request) -> web.Response:
    state = emu_of(request).state
    user = user_of(request)
    req = page_request(request, ["computedAt"], searchable=False)
    return page_of(state.user_records(user, req), state.record_wire)


async def owner_credits(request: web.Request) -> web.Response:
    """`GET /owners/{owner}/credits` [ours, not the vendor's]: the reference documents no
    credits read (contract §5); `enroller check` uses this one where a server serves it.
    `left` and `limit` are null when the owner's credits are unlimited."""
    state = emu_of(request).state
    user = user_of(request)
    owner = request.match_info["owner"]
    if not state.may_act_for(user, owner):
        raise ApiError(403, f"access denied: {owner} is neither you nor one of your organizations")
    return respond(
        {
            "owner": owner,
            "limit": state.credit_limit(owner),
            "used": state.credits_used.get(owner, 0),
            "left": state.credits_left(owner),
        }
    )
