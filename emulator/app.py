"""The HTTP face of the emulator: aiohttp routes and middlewares over `State`.

Owns: parsing requests (pydantic bodies, Bearer tokens, list queries), calling one `State`
method, rendering JSON, and the cross-cutting emulation of a real service: latency, per-token
rate limit, injected faults, stats, and `{"message": …}` bodies for every error. Rules live in
`state.py`; this module must not decide any of them. Blocking work (base64 decoding, audio
analysis) runs in a worker thread so that a large upload never stalls other requests.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from emulator.audio import Analysis, analyze
from emulator.config import EmulatorOptions
from emulator.faults import FaultInjector, FaultKind
from emulator.pagination import PageResult, PaginationError, parse_page_request
from emulator.persist import Persister
from emulator.ratelimit import RateLimiter, retry_after_header
from emulator.rules import model_name
from emulator.state import ApiError, Space, State, User, bad_request
from emulator.stats import Stats

API_PREFIX = "/v1"
CHUNK = 256 * 1024
SPOOL_IN_MEMORY = 1024 * 1024  # uploads above this go to a temp file, not RAM
DRAIN_LIMIT_FACTOR = 8  # an oversized body is read and discarded up to this × the limit
UPLOAD_TYPES = ("application/octet-stream", "audio/")
# Path parameters never hold ':' (handles cannot), so `{vp}:compute` routes stay unambiguous.
P = "[^{}/:]+"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")


@dataclass
class Emulator:
    """Everything a request may touch, built once per server (see `server.py`)."""

    options: EmulatorOptions
    state: State
    persister: Persister
    limiter: RateLimiter
    faults: FaultInjector
    stats: Stats
    # Base64 decoding and audio analysis, off the event loop and on ONE thread: every extra
    # thread decoding at once is one more holder of the GIL the loop must wait for, and a
    # loop stalled for tens of ms bunches arrivals into the rate limiter (429s the client
    # never earned).
    audio_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="emulator-audio")
    )

    async def off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking audio work on the audio thread."""
        return await asyncio.get_running_loop().run_in_executor(self.audio_pool, fn, *args)

    def stats_wire(self) -> dict[str, Any]:
        return self.stats.to_wire(
            {
                "retry_after_violations": self.limiter.violations,
                "records": len(self.state.records),
                "credits_used": dict(self.state.credits_used),
                "state_writes": self.persister.writes,
                "audios_by_state": dict(Counter(a.state for _, a in self.state.iter_audios())),
            }
        )


EMULATOR = web.AppKey("emulator", Emulator)


DROPPED = web.RequestKey("dropped", bool)  # set when a fault cut the connection

# --- request bodies ---------------------------------------------------------------------------


class Body(BaseModel):
    """Request bodies: unknown fields are ignored, as a tolerant service would."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class CredentialsBody(Body):
    handle: str = Field(min_length=1, max_length=50)
    password: str = Field(min_length=8, max_length=50)


class IdentityBody(Body):
    handle: str
    alias: str | None = None


class AudioBody(Body):
    file: str | None = None
    alias: str | None = None
    identity: str | None = None


class IdentifyBody(Body):
    identity: str


class ModelObject(Body):
    handle: str
    version: str


class VoiceprintBody(Body):
    identity: str
    model: str | ModelObject
    min_audios: int = Field(alias="minAudios", strict=True)
    handle: str | None = None
    alias: str | None = None


class VerificationBody(Body):
    audio: str
    identity: str
    voiceprint: str
    alias: str | None = None


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return "invalid request body: " + "; ".join(parts)


async def _body(request: web.Request, model: type[Body]) -> Any:
    raw = await request.read()
    if not raw.strip():
        raise bad_request("request body must be a JSON object")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise bad_request(_validation_message(exc)) from None


# --- helpers ----------------------------------------------------------------------------------


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers)


def _page(result: PageResult[Any], render: Callable[[Any], dict[str, Any]]) -> web.Response:
    return _json([render(it) for it in result.items], headers=result.headers())


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _emu(request: web.Request) -> Emulator:
    return request.app[EMULATOR]


def _user(request: web.Request) -> User:
    return _emu(request).state.authenticate(_bearer(request))


def _space(request: web.Request) -> tuple[State, User, Space]:
    state = _emu(request).state
    user = state.authenticate(_bearer(request))
    mi = request.match_info
    return state, user, state.space(user, mi["owner"], mi["space"])


def _page_request(request: web.Request, sorts: list[str], searchable: bool = True) -> Any:
    try:
        return parse_page_request(request.query, sorts, searchable=searchable)
    except PaginationError as exc:
        raise bad_request(str(exc)) from None


async def _commit(request: web.Request) -> None:
    await _emu(request).persister.commit()


# --- handlers: auth and caller ---------------------------------------------------------------


async def sign_in(request: web.Request) -> web.Response:
    body = await _body(request, CredentialsBody)
    answer = _emu(request).state.sign_in(body.handle, body.password)
    await _commit(request)
    return _json(answer)


async def get_user(request: web.Request) -> web.Response:
    state = _emu(request).state
    return _json(state.user_wire(_user(request)))


async def get_models(request: web.Request) -> web.Response:
    _user(request)
    return _json([m.to_wire() for m in State.models()])


# --- identities ----------------------------------------------------------------------------


async def create_identity(request: web.Request) -> web.Response:
    state, _, sp = _space(request)
    body = await _body(request, IdentityBody)
    ident = state.create_identity(sp, body.handle, body.alias)
    _emu(request).stats.created["identities"] += 1
    await _commit(request)
    return _json(state.identity_wire(ident), status=201)


async def get_identity(request: web.Request) -> web.Response:
    state, _, sp = _space(request)
    return _json(state.identity_wire(state.identity(sp, request.match_info["identity"])))


async def list_identities(request: web.Request) -> web.Response:
    state, _, sp = _space(request)
    req = _page_request(request, ["createdAt", "handle"])
    return _page(state.list_identities(sp, req), state.identity_wire)


# --- audios --------------------------------------------------------------------------------


def _decode_base64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("file must be the whole file in standard base64") from None


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"audio file is larger than the {limit} byte limit ({limit >> 20} MiB)")


async def create_audio(request: web.Request) -> web.Response:
    emu = _emu(request)
    state, _, sp = _space(request)
    body = await _body(request, AudioBody)
    state.check_new_audio(sp, body.alias, body.identity)
    analysis: Analysis | None = None
    size: int | None = None
    if body.file is not None:
        data = await emu.off_loop(_decode_base64, body.file)
        size = len(data)
        if size > emu.options.max_upload_bytes:
            raise _too_large(emu.options.max_upload_bytes)
        emu.stats.bytes_received += size
        analysis = await emu.off_loop(_analyze_bytes, data)
    audio = state.create_audio(sp, body.alias, body.identity, analysis, size)
    emu.stats.created["audios"] += 1
    if analysis is not None:
        emu.stats.uploads_accepted += 1
        emu.stats.upload_attempts[f"{sp.owner}/{sp.handle}/{audio.handle}"] += 1
    await _commit(request)
    return _json(state.audio_wire(sp, audio), status=201)


def _analyze_bytes(data: bytes) -> Analysis:
    return analyze(io.BytesIO(data))


async def _drain(request: web.Request, budget: int) -> None:
    """Read and discard the rest of an oversized body, so the client can read our 413."""
    drained = 0
    async for chunk in request.content.iter_chunked(CHUNK):
        drained += len(chunk)
        if drained > budget:
            # A body this large is abuse, not a mistake: stop reading and close afterwards.
            request.protocol.force_close()
            return


async def _spool_body(request: web.Request, limit: int) -> IO[bytes]:
    """Stream the request body into a spooled temp file, enforcing `limit` as it arrives."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
    try:
        received = 0
        async for chunk in request.content.iter_chunked(CHUNK):
            received += len(chunk)
            if received > limit:
                await _drain(request, limit * DRAIN_LIMIT_FACTOR)
                raise _too_large(limit)
            # Disk writes of a spooled file are small and buffered; not worth a thread hop.
            spool.write(chunk)
        spool.seek(0)
        return spool
    except BaseException:
        spool.close()
        raise


async def upload_file(request: web.Request) -> web.Response:
    emu = _emu(request)
    limit = emu.options.max_upload_bytes
    handle = request.match_info["audio"]
    try:
        state, _, sp = _space(request)
        emu.stats.upload_attempts[f"{sp.owner}/{sp.handle}/{handle}"] += 1
        state.check_awaiting_file(sp, handle)
        ctype = request.content_type
        if not any(ctype.startswith(t) for t in UPLOAD_TYPES):
            raise bad_request(f"the file must be sent as application/octet-stream, not {ctype}")
        if request.content_length is not None and request.content_length > limit:
            raise _too_large(limit)
    except ApiError:
        # Refused before reading: still read the body away, so that a client streaming a
        # large file gets to read our answer instead of a broken pipe.
        await _drain(request, limit * DRAIN_LIMIT_FACTOR)
        raise
    spool = await _spool_body(request, limit)
    with spool:
        size = spool.seek(0, 2)
        spool.seek(0)
        emu.stats.bytes_received += size
        analysis = await emu.off_loop(analyze, spool)
    # Checked again: a concurrent upload for the same audio may have won meanwhile (→ 409).
    audio = state.attach_file(sp, handle, analysis, size)
    emu.stats.uploads_accepted += 1
    await _commit(request)
    return _json(state.audio_wire(sp, audio))


async def get_audio(request: web.Request) -> web.Response:
    state, _, sp = _space(request)
    return _json(state.audio_wire(sp, state.audio(sp, request.match_info["audio"])))


async def list_audios(request: web.Request) -> web.Response:
    state, _, sp = _space(request)
    req = _page_request(request, ["createdAt", "handle", "uploadedAt"])
    return _page(state.list_audios(sp, req), lambda a: state.audio_wire(sp, a))


async def identify_audio(request: web.Request) -> web.Response:
    state, _, sp = _space(request)
    body = await _body(request, IdentifyBody)
    audio = state.identify_audio(sp, request.match_info["audio"], body.identity)
    await _commit(request)
    return _json(state.audio_wire(sp, audio))


# --- voiceprints ---------------------------------------------------------------------------


async def create_voiceprint(request: web.Request) -> web.Response:
    state, _, sp = _space(request)
    body = await _body(request, VoiceprintBody)
    model = body.model if isinstance(body.model, str) else model_name(body.model.model_dump())
    vp = state.create_voiceprint(sp, body.identity, model, body.min_audios, body.handle, body.alias)
    _emu(request).stats.created["voiceprints"] += 1
    await _commit(request)
    return _json(state.voiceprint_wire(sp, vp), status=201)


async def get_voiceprint(request: web.Request) -> web.Response:
    state, _, sp = _space(request)
    mi = request.match_info
    return _json(state.voiceprint_wire(sp, state.voiceprint(sp, mi["identity"], mi["voiceprint"])))


async def list_voiceprints(request: web.Request) -> web.Response:
    state, _, sp = _space(request)
    req = _page_request(request, ["createdAt", "handle", "computedAt"])
    result = state.list_voiceprints(sp, request.match_info["identity"], req)
    return _page(result, lambda v: state.voiceprint_wire(sp, v))


async def list_voiceprint_audios(request: web.Request) -> web.Response:
    state, _, sp = _space(request)
    mi = request.match_info
    req = _page_request(request, ["createdAt", "handle", "uploadedAt"])
    result = state.list_voiceprint_audios(sp, mi["identity"], mi["voiceprint"], req)
    return _page(result, lambda a: state.audio_wire(sp, a))


async def add_audio(request: web.Request) -> web.Response:
    state, _, sp = _space(request)
    mi = request.match_info
    vp = state.add_audio(sp, mi["identity"], mi["voiceprint"], mi["audio"])
    await _commit(request)
    return _json(state.voiceprint_wire(sp, vp))


async def remove_audio(request: web.Request) -> web.Response:
    state, _, sp = _space(request)
    mi = request.match_info
    vp = state.remove_audio(sp, mi["identity"], mi["voiceprint"], mi["audio"])
    await _commit(request)
    return _json(state.voiceprint_wire(sp, vp))


async def compute(request: web.Request) -> web.Response:
    emu = _emu(request)
    state, user, sp = _space(request)
    mi = request.match_info
    try:
        vp = state.compute(sp, mi["identity"], mi["voiceprint"], user)
    except ApiError as exc:
        if exc.status == 429:
            emu.stats.credit_refusals += 1
        raise
    emu.stats.created["computes"] += 1
    await _commit(request)
    return _json(state.voiceprint_wire(sp, vp))


# --- records and verifications --------------------------------------------------------------


async def org_records(request: web.Request) -> web.Response:
    state = _emu(request).state
    user = _user(request)
    req = _page_request(request, ["computedAt"], searchable=False)
    return _page(state.org_records(user, request.match_info["org"], req), state.record_wire)


async def user_records(request: web.Request) -> web.Response:
    state = _emu(request).state
    user = _user(request)
    req = _page_request(request, ["computedAt"], searchable=False)
    return _page(state.user_records(user, req), state.record_wire)


async def owner_credits(request: web.Request) -> web.Response:
    """`GET /owners/{owner}/credits` [ours, not the vendor's]: the reference documents no
    credits read (contract §5); `enroller check` uses this one where a server serves it.
    `left` and `limit` are null when the owner's credits are unlimited."""
    state = _emu(request).state
    user = _user(request)
    owner = request.match_info["owner"]
    if not state.may_act_for(user, owner):
        raise ApiError(403, f"access denied: {owner} is neither you nor one of your organizations")
    return _json(
        {
            "owner": owner,
            "limit": state.credit_limit(owner),
            "used": state.credits_used.get(owner, 0),
            "left": state.credits_left(owner),
        }
    )


async def create_verification(request: web.Request) -> web.Response:
    state, _, sp = _space(request)
    body = await _body(request, VerificationBody)
    ver = state.create_verification(sp, body.audio, body.identity, body.voiceprint, body.alias)
    await _commit(request)
    return _json(state.verification_wire(sp, ver), status=201)


# --- emulator's own endpoints ---------------------------------------------------------------


async def get_stats(request: web.Request) -> web.Response:
    return _json(_emu(request).stats_wire())


async def reset_stats(request: web.Request) -> web.Response:
    emu = _emu(request)
    emu.stats.reset()
    emu.limiter.violations = 0
    return _json(emu.stats_wire())


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
    stats = _emu(request).stats
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
        return _json({"message": exc.message}, status=exc.status, headers=exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.reason if exc.status != 404 else f"no such endpoint: {request.path}"
        if exc.status == 413:
            message = "request body too large"
        return _json({"message": message}, status=exc.status)
    except Exception:
        request.app.logger.exception("emulator: unexpected error on %s", _route_key(request))
        return _json({"message": "internal error"}, status=500)


def _drop(request: web.Request) -> web.Response:
    """Cut the connection with no response, as a crashed server or a proxy reset would.

    The returned response is never delivered (the transport is gone); aiohttp discards it
    quietly, where raising would log a traceback for every injected drop.
    """
    emu = _emu(request)
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
    emu = _emu(request)
    decision = None
    if emu.limiter.enabled:
        # Counted when it arrives, as a gateway does: not after the emulated latency, whose
        # timers a stalled loop (a busy 2-core machine) fires all at once, bunching requests
        # that came evenly into refusals the client never earned.
        token = _bearer(request) or f"anonymous:{request.remote}"
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
        return _json(
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
    return _json({"message": f"injected fault: HTTP {status}"}, status=status)


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
            web.post(f"{API_PREFIX}/auth/credentials", sign_in),
            web.get(f"{API_PREFIX}/user", get_user),
            web.get(f"{API_PREFIX}/user/records/voiceprint", user_records),
            web.get(f"{API_PREFIX}/orgs/{{org:{P}}}/records/voiceprint", org_records),
            web.get(f"{API_PREFIX}/models", get_models),
            web.get(f"{API_PREFIX}/owners/{{owner:{P}}}/credits", owner_credits),  # ours
            web.post(f"{sp}/identities", create_identity),
            web.get(f"{sp}/identities", list_identities),
            web.get(f"{sp}/identities/{{identity:{P}}}", get_identity),
            web.get(f"{sp}/identities/{{identity:{P}}}/voiceprints", list_voiceprints),
            web.post(f"{sp}/audios", create_audio),
            web.get(f"{sp}/audios", list_audios),
            web.get(f"{sp}/audios/{{audio:{P}}}", get_audio),
            web.post(f"{sp}/audios/{{audio:{P}}}/file", upload_file),
            web.post(f"{sp}/audios/{{audio:{P}}}:identify", identify_audio),
            web.post(f"{sp}/voiceprints", create_voiceprint),
            web.get(vp, get_voiceprint),
            web.post(f"{vp}:compute", compute),
            web.get(f"{vp}/audios", list_voiceprint_audios),
            web.post(f"{vp}/audios/{{audio:{P}}}", add_audio),
            web.delete(f"{vp}/audios/{{audio:{P}}}", remove_audio),
            web.post(f"{sp}/verifications/identity", create_verification),
            web.get("/_emulator/stats", get_stats),
            web.delete("/_emulator/stats", reset_stats),
        ]
    )
    return app
