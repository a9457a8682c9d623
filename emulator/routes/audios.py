"""Routes of audios (api-contract.md §3, Audios): create (inline base64 or awaiting its file),
upload the file, read, list, identify.

Owns: reading these requests (bodies spooled, oversized ones drained, decoding and analysis
on the emulator's audio thread) and answering each with `State` calls; no rule of its own.
"""

from __future__ import annotations

import base64
import binascii
import io
import tempfile
from typing import IO

from aiohttp import web

from emulator.audio import Analysis, analyze
from emulator.records import ApiError, bad_request
from emulator.routes.common import (
    Body,
    commit,
    emu_of,
    page_of,
    page_request,
    read_body,
    respond,
    space_of,
)

CHUNK = 256 * 1024
SPOOL_IN_MEMORY = 1024 * 1024  # uploads above this go to a temp file, not RAM
DRAIN_LIMIT_FACTOR = 8  # an oversized body is read and discarded up to this × the limit
UPLOAD_TYPES = ("application/octet-stream", "audio/")


class AudioBody(Body):
    file: str | None = None
    alias: str | None = None
    identity: str | None = None


class IdentifyBody(Body):
    identity: str


def _decode_base64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("file must be the whole file in standard base64") from None


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"audio file is larger than the {limit} byte limit ({limit >> 20} MiB)")


async def create_audio(request: web.Request) -> web.Response:
    emu = emu_of(request)
    state, _, sp = space_of(request)
    body = await read_body(request, AudioBody)
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
    await commit(request)
    return respond(state.audio_wire(sp, audio), status=201)


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
    emu = emu_of(request)
    limit = emu.options.max_upload_bytes
    handle = request.match_info["audio"]
    try:
        state, _, sp = space_of(request)
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
    await commit(request)
    return respond(state.audio_wire(sp, audio))


async def get_audio(request: web.Request) -> web.Response:
    state, _, sp = space_of(request)
    return respond(state.audio_wire(sp, state.audio(sp, request.match_info["audio"])))


async def list_audios(request: web.Request) -> web.Response:
    state, _, sp = space_of(request)
    req = page_request(request, ["createdAt", "handle", "uploadedAt"])
    return page_of(state.list_audios(sp, req), lambda a: state.audio_wire(sp, a))


async def identify_audio(request: web.Request) -> web.Response:
    state, _, sp = space_of(request)
    body = await read_body(request, IdentifyBody)
    audio = state.identify_audio(sp, request.match_info["audio"], body.identity)
    await commit(request)
    return respond(state.audio_wire(sp, audio))
