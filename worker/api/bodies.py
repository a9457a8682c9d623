"""Answer bodies read inside a bound, counted after decompression, and each request's deadline.

Owns: reading one answer's body from the wire without letting the server choose how much
memory it takes (api-contract.md §5, "What stands between us and the service"): the raw bytes
arrive in chunks, a `Content-Encoding` of gzip or deflate is inflated here (never by aiohttp,
whose inflater takes a whole network chunk at once) with zlib's `max_length`, so a body that
inflates without end stops one byte past the cap; and the total time one request may take,
derived from its upload size. Pure but for the stream it is handed; the transport raises.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

CHUNK_BYTES = 64 * 1024
# What the client accepts: the encodings it can inflate inside the cap, and nothing else.
ACCEPT_ENCODING = "gzip, deflate"


class BodyTooLarge(Exception):
    """The answer's body (after decompression) is longer than the cap."""

    def __init__(self, cap: int) -> None:
        super().__init__(f"answer larger than {cap} bytes (ENROLLER_MAX_RESPONSE_BYTES)")
        self.cap = cap


class BodyUnreadable(Exception):
    """The body's encoding is unknown, or its compressed stream is damaged."""


def _inflater(encoding: str) -> Any:
    """The decompressor for a `Content-Encoding`, None for identity; unknown ones refused."""
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return None
    if name in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if name == "deflate":
        return zlib.decompressobj(32 + zlib.MAX_WBITS)  # zlib-wrapped (or gzip) stream
    raise BodyUnreadable(f"answer in an encoding the client did not ask for: {name[:40]!r}")


async def read_bounded(chunks: AsyncIterator[bytes], headers: Mapping[str, str], cap: int) -> bytes:
    """The whole body of an answer, at most `cap` bytes after decompression.

    Raises `BodyTooLarge` as soon as the body (or a declared `Content-Length` of an
    uncompressed body) passes `cap`, having held at most `cap` + one chunk: the rest is never
    read. `BodyUnreadable` for an encoding it cannot inflate.
    """
    inflater = _inflater(headers.get("Content-Encoding", ""))
    declared = headers.get("Content-Length", "")
    if inflater is None and declared.isdigit() and int(declared) > cap:
        raise BodyTooLarge(cap)
    out = bytearray()
    async for raw in chunks:
        if inflater is None:
            out += raw
        else:
            _inflate_into(out, inflater, raw, cap)
        if len(out) > cap:
            raise BodyTooLarge(cap)
    if inflater is not None:
        try:
            out += inflater.flush()
        except zlib.error as exc:
            raise BodyUnreadable(f"damaged compressed answer ({exc})") from None
        if len(out) > cap:
            raise BodyTooLarge(cap)
    return bytes(out)


def _inflate_into(out: bytearray, inflater: Any, raw: bytes, cap: int) -> None:
    """Inflate `raw` into `out`, never producing more than one byte past `cap`."""
    data = raw
    while data:
        try:
            out += inflater.decompress(data, cap + 1 - len(out))
        except zlib.error as exc:
            raise BodyUnreadable(f"damaged compressed answer ({exc})") from None
        if len(out) > cap:
            raise BodyTooLarge(cap)
        data = inflater.unconsumed_tail
        if inflater.eof:
            return


def deadline(upload_bytes: int, *, request_timeout: float, min_rate: float) -> float:
    """Seconds one request may take in total: `request_timeout`, plus the upload's bytes at
    `min_rate` bytes per second. A trickling answer or a stalled upload ends there."""
    return request_timeout + (upload_bytes / min_rate if upload_bytes > 0 else 0.0)
