"""The transport: one attempt of one request on the wire, and nothing else.

Owns: the `Transport` seam (httpx's `AsyncBaseTransport`: a request in, an answer out) and its
one production form, `AiohttpTransport`: URLs from route templates (each path value quoted),
query parameters, the Authorization header, JSON or a streamed file body, timeouts, and turning
transport failures into `NotSent` (certainly not sent) or `OutcomeUnknown` (may have taken
effect). It never retries, never waits for the governor (the request loop holds the slot
around each attempt), never reads an answer's meaning (loop.py and retry_rules.py do) and never
logs: errors name the route template, never the URL's query, the headers or the body.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
from yarl import URL

from worker.api.bodies import (
    ACCEPT_ENCODING,
    CHUNK_BYTES,
    BodyTooLarge,
    BodyUnreadable,
    deadline,
    read_bounded,
)
from worker.api.errors import ApiError, NotSent, OutcomeUnknown
from worker.api.inline import InlineAudioBody
from worker.audio.files import VerifiedUpload
from worker.config.settings import setting_default

OCTET_STREAM = "application/octet-stream"
USER_AGENT = "voiceprint-enroller/0.1"


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer, read whole: status, headers and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Request:
    """One attempt to send: what the transport puts on the wire.

    `route` is the template (for errors and metrics, never the URL); `token` goes in the
    Authorization header; `file` is a streamed body (an upload), sent instead of `json`.
    """

    method: str
    url: URL
    route: str
    token: str | None = None
    json: Any = None
    query: Mapping[str, str] = field(default_factory=dict)
    file: VerifiedUpload | InlineAudioBody | None = None


class Transport(Protocol):
    """One attempt on the wire: the client's only network seam (tests pass a script).

    `send` returns the answer, whatever its status, or raises `NotSent` (the request certainly
    did not leave) or `OutcomeUnknown` (it may have taken effect). `open` and `aclose` bracket
    the client's `async with`.
    """

    async def open(self) -> None: ...

    async def send(self, request: Request) -> Answer: ...

    async def aclose(self) -> None: ...


Query = Mapping[str, str | int | datetime | None]


def query_params(params: Query) -> dict[str, str]:
    """Query parameters on the wire: None dropped, dates as ISO-8601 UTC with a Z."""
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            value = value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        out[key] = str(value)
    return out


def header_int(headers: Mapping[str, str], name: str) -> int | None:
    try:
        return int(headers[name])
    except (KeyError, ValueError):
        return None


def route_url(base_url: str, route: str, path: Mapping[str, str]) -> URL:
    """The URL of a route template, each path value quoted."""
    quoted = {k: quote(v, safe="") for k, v in path.items()}
    return URL(base_url + route.format(**quoted), encoded=True)


class AiohttpTransport:
    """The production transport: one `aiohttp.ClientSession`, opened and closed with the client.

    Its connection pool is sized to the governor's in-flight cap (`max_connections`), so that a
    request holding an in-flight place never waits for a connection.
    """

    def __init__(
        self,
        *,
        request_timeout: float = setting_default("request_timeout"),
        max_connections: int = 64,
        max_response_bytes: int = setting_default("max_response_bytes"),
        min_transfer_rate: float = setting_default("min_transfer_rate"),
    ) -> None:
        self.request_timeout = request_timeout
        self.max_connections = max_connections
        self.max_response_bytes = max_response_bytes
        self.min_transfer_rate = min_transfer_rate
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0)
        # auto_decompress off: bodies.py inflates inside the cap (aiohttp would inflate a
        # whole network chunk at once, a gzip bomb's 64 KiB becoming 64 MiB).
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
                "Accept-Encoding": ACCEPT_ENCODING,
            },
            auto_decompress=False,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def send(self, request: Request) -> Answer:
        """One attempt; transport failures become NotSent/OutcomeUnknown.

        The upload body streams from the file in chunks read in a thread, with the exact
        Content-Length preflight measured, so memory does not grow with the file; the chunks
        re-check the file's size and sha256 and abort the body if it changed (`VerifiedUpload`),
        which is the file's problem (`AudioUnreadable`), never an unknown outcome.
        Every request, uploads included, has a total deadline (`bodies.deadline`: the request
        timeout plus the upload's size at the minimum transfer rate), answer included: a
        trickle is a timeout, never a hang. The answer's body is read inside
        `max_response_bytes` after decompression; a longer one is abandoned unread.
        """
        if self._session is None:
            raise RuntimeError("ApiClient is not open: use `async with ApiClient(...)`")
        file = request.file
        headers = {"Authorization": f"Bearer {request.token}"} if request.token is not None else {}
        limit = deadline(
            file.size if file is not None else 0,
            request_timeout=self.request_timeout,
            min_rate=self.min_transfer_rate,
        )
        timeout = aiohttp.ClientTimeout(
            total=limit, sock_connect=self.request_timeout, sock_read=self.request_timeout
        )
        try:
            async with asyncio.timeout(limit):
                return await self._exchange(self._session, request, headers, timeout, limit)
        except TimeoutError:
            raise OutcomeUnknown(
                f"no complete answer within {limit:g} s",
                kind="timeout",
                method=request.method,
                route=request.route,
            ) from None
        except ApiError:
            if file is not None and file.failure is not None:
                raise file.failure from None  # the file, not the network, stopped it
            raise

    async def _exchange(
        self,
        session: aiohttp.ClientSession,
        request: Request,
        headers: dict[str, str],
        client_timeout: aiohttp.ClientTimeout,
        limit: float,
    ) -> Answer:
        """The request itself; transport failures become NotSent/OutcomeUnknown."""
        method, route, file = request.method, request.route, request.file
        try:
            data: Any = None
            if file is not None:
                inline = isinstance(file, InlineAudioBody)
                headers["Content-Type"] = file.content_type if inline else OCTET_STREAM
                headers["Content-Length"] = str(file.size)
                data = file.chunks()
            async with session.request(
                method,
                request.url,
                params=dict(request.query) or None,
                json=request.json,
                data=data,
                headers=headers,
                timeout=client_timeout,
                # A redirect would resend the Authorization header to a place we did not
                # choose; the contract has none, so one is an error answer, not followed.
                allow_redirects=False,
            ) as response:
                if 300 <= response.status < 400:  # never followed, its body never read
                    return Answer(response.status, response.headers, b"")
                body = await read_bounded(
                    response.content.iter_chunked(CHUNK_BYTES),
                    response.headers,
                    self.max_response_bytes,
                )
                return Answer(response.status, response.headers, body)
        except BodyTooLarge as exc:
            raise OutcomeUnknown(str(exc), kind="too_large", method=method, route=route) from None
        except BodyUnreadable as exc:
            raise OutcomeUnknown(str(exc), kind="unreadable", method=method, route=route) from None
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise NotSent(
                describe(exc), method=method, route=route
            ) from None  # the cause may hold request info with headers: not chained
        except TimeoutError as exc:
            raise OutcomeUnknown(
                f"no complete answer within {limit:g} s ({describe(exc)})",
                kind="timeout",
                method=method,
                route=route,
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise OutcomeUnknown(
                describe(exc), kind="connection", method=method, route=route
            ) from None
        finally:
            if file is not None:
                file.close()  # a body abandoned mid-stream must not keep its file open


def describe(exc: BaseException) -> str:
    """A transport error as text without anything of the request but its kind."""
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text else name
