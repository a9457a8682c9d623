"""The HTTP face of the emulator: aiohttp routes and middlewares over `State`.

Owns: the route table (paths → the handlers of routes/, one module per resource group), and
the cross-cutting emulation of a real service: latency, per-token rate limit, injected
faults, stats, and `{"message": …}` bodies for every error. Rules live in `state/`; no
module of the HTTP face decides any of them. Handlers parse requests and call `State`
(routes/); blocking work (base64 decoding, audio analysis) runs on the emulator's audio
thread so that a large upload never stalls other requests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from emulator.faults import FaultKind
from emulator.ratelimit import retry_after_header
from emulator.records import ApiError
from emulator.routes import audios, identities, records, voiceprints
from emulator.routes.common import EMULATOR, Emulator, bearer, emu_of, respond

__all__ = ["API_PREFIX", "Emulator", "build_app"]

API_PREFIX = "/v1"
# Path parameters never hold ':' (handles cannot), so `{vp}:compute` routes stay unambiguous.
P = "[^{}/:]+"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DROPPED = web.RequestKey("dropped", bool)  # set when a fault cut the connection


# --- emulator's own endpoints ---------------------------------------------------------------


async def get_stats(request: web.Request) -> web.Response:
    return respond(emu_of(request).stats_wire())


async def reset_stats(request: web.Request) -> web.Response:
    emu = emu_of(request)
    emu.stats.reset()
    emu.limiter.violations = 0
    return respond(emu.stats_wire())


# --- middlewares ------------------------------------------------------------------------------


def _route_key(request: web.Request) -> str:
    """`METHOD /template` relative to /v1, e.g. `POST /spaces/{owner}/{space}/audios`."""
    route = request.match_info.route
    resource = route.resource
    if resource is None or request.match_info.http_exception is not None:
        return f"{request.method} (unmatched)"
    return f"{request.method} {resource.canonical.removeprefix(API_PREFIX)}"


@web.middleware
async def stats_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: counts every request once, by final status (or `dropped`)."""
    stats = emu_of(request).stats
    is_api = request.path.startswith(API_PREFIX + "/")
    if is_api:
        stats.started()
    status = "500"
    try:
        response = await handler(request)
        status = "dropped" if request.get(DROPPED) else str(response.status)
        return response
    except web.HTTPException as exc:
        status = str(exc.status)
        raise
    finally:
        if is_api:
            stats.finished(_route_key(request), status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error becomes `{"message": …}` with the right status; nothing leaks a traceback."""
    try:
        return await handler(request)
    except ApiError as exc:
        return respond({"message": exc.message}, status=exc.status, headers=exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.reason if exc.status != 404 else f"no such endpoint: {request.path}"
        if exc.status == 413:
            message = "request body too large"
        return respond({"message": message}, status=exc.status)
    except Exception:
        request.app.logger.exception("emulator: unexpected error on %s", _route_key(request))
        return respond({"message": "internal error"}, status=500)


def _drop(request: web.Request) -> web.Response:
    """Cut the connection with no response, as a crashed server or a proxy reset would.

    The returned response is never delivered (the transport is gone); aiohttp discards it
    quietly, where raising would log a traceback for every injected drop.
    """
    emu = emu_of(request)
    emu.stats.faults["dropped"] += 1
    request[DROPPED] = True
    request.protocol.force_close()
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=500)


@web.middleware
async def emulation_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Latency, per-token rate limit and injected faults, for API routes only."""
    if not request.path.startswith(API_PREFIX + "/"):
        return await handler(request)
    emu = emu_of(request)
    decision = None
    if emu.limiter.enabled:
        # Counted when it arrives, as a gateway does: not after the emulated latency, whose
        # timers a stalled loop (a busy 2-core machine) fires all at once, bunching requests
        # that came evenly into refusals the client never earned.
        token = bearer(request) or f"anonymous:{request.remote}"
        decision = emu.limiter.check(token, time.monotonic())
        refused_at = time.time()
    if emu.options.latency_ms > 0:
        if request.content_type == "application/json" and request.can_read_body:
            # Received first, slow afterwards: a client that times out meanwhile leaves a
            # request the server still carries out (the real "outcome unknown").
            await request.read()
        await asyncio.sleep(emu.options.latency_ms / 1000)
    if decision is not None and not decision.allowed:
        emu.stats.throttled(_route_key(request))
        retry_after = retry_after_header(
            decision.retry_after, emu.options.retry_after_format, refused_at
        )
        return respond(
            {"message": f"rate limit exceeded; retry after {decision.retry_after} s"},
            status=429,
            headers={"Retry-After": retry_after},
        )
    fault = emu.faults.decide(request.method)
    if fault is None:
        return await handler(request)
    if fault.after_effect:
        emu.stats.faults["after_effect"] += 1
        await handler(request)  # the effect happens and is kept; only the answer is lost
    else:
        emu.stats.faults["before_effect"] += 1
    if fault.kind is FaultKind.DROP:
        return _drop(request)
    status = int(fault.kind)
    emu.stats.faults[str(status)] += 1
    return respond({"message": f"injected fault: HTTP {status}"}, status=status)


# --- application ------------------------------------------------------------------------------


def build_app(emulator: Emulator) -> web.Application:
    """The aiohttp application serving the contract under /v1 and `/_emulator/stats`."""
    # Base64 bodies are 4/3 of the file; aiohttp refuses larger bodies with 413 itself.
    max_json = emulator.options.max_upload_bytes * 4 // 3 + 64 * 1024
    app = web.Application(
        client_max_size=max_json,
        middlewares=[stats_middleware, error_middleware, emulation_middleware],
    )
    app[EMULATOR] = emulator
    sp = f"{API_PREFIX}/spaces/{{owner:{P}}}/{{space:{P}}}"
    vp = f"{sp}/voiceprints/{{identity:{P}}}/{{voiceprint:{P}}}"
    app.router.add_routes(
        [
            web.post(f"{API_PREFIX}/auth/credentials", identities.sign_in),
            web.get(f"{API_PREFIX}/user", identities.get_user),
            web.get(f"{API_PREFIX}/user/records/voiceprint", records.user_records),
            web.get(f"{API_PREFIX}/orgs/{{org:{P}}}/records/voiceprint", records.org_records),
            web.get(f"{API_PREFIX}/models", voiceprints.get_models),
            web.get(f"{API_PREFIX}/owners/{{owner:{P}}}/credits", records.owner_credits),  # ours
            web.post(f"{sp}/identities", identities.create_identity),
            web.get(f"{sp}/identities", identities.list_identities),
            web.get(f"{sp}/identities/{{identity:{P}}}", identities.get_identity),
            web.get(f"{sp}/identities/{{identity:{P}}}/voiceprints", voiceprints.list_voiceprints),
            web.post(f"{sp}/audios", audios.create_audio),
            web.get(f"{sp}/audios", audios.list_audios),
            web.get(f"{sp}/audios/{{audio:{P}}}", audios.get_audio),
            web.post(f"{sp}/audios/{{audio:{P}}}/file", audios.upload_file),
            web.post(f"{sp}/audios/{{audio:{P}}}:identify", audios.identify_audio),
            web.post(f"{sp}/voiceprints", voiceprints.create_voiceprint),
            web.get(vp, voiceprints.get_voiceprint),
            web.patch(vp, voiceprints.rename_voiceprint),  # [inferred]
            web.delete(vp, voiceprints.delete_voiceprint),  # [inferred]
            web.post(f"{vp}:compute", voiceprints.compute),
            web.get(f"{vp}/audios", voiceprints.list_voiceprint_audios),
            web.post(f"{vp}/audios/{{audio:{P}}}", voiceprints.add_audio),
            web.delete(f"{vp}/audios/{{audio:{P}}}", voiceprints.remove_audio),
            web.post(f"{sp}/verifications/identity", voiceprints.create_verification),
            web.get("/_emulator/stats", get_stats),
            web.delete("/_emulator/stats", reset_stats),
        ]
    )
    return app
