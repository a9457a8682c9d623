"""One attempt of one request over the aiohttp session, inside a governor slot.

Owns: the wire: URLs from route templates (each path value quoted), query parameters, the
Authorization header, JSON or a streamed file body, timeouts, and turning transport failures
into `NotSent` (certainly not sent) or `OutcomeUnknown` (may have taken effect). It never
retries, never reads an answer's meaning (loop.py and retry_rules.py do) and never logs:
errors name the route template, never the URL's query, the headers or the body.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from worker.api.errors import ApiError, NotSent, OutcomeUnknown
from worker.api.governor import Governor
from worker.api.inline import InlineAudioBody
from worker.audio.files import VerifiedUpload

OCTET_STREAM = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer, read whole: status, headers and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


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


class Transport:
    """Sending one attempt; a part of `ApiClient`, which sets these attributes."""

    base_url: str
    governor: Governor
    request_timeout: float
    _session: aiohttp.ClientSession | None

    def _url(self, route: str, path: Mapping[str, str]) -> URL:
        quoted = {k: quote(v, safe="") for k, v in path.items()}
        return URL(self.base_url + route.format(**quoted), encoded=True)

    async def _send(
        self,
        method: str,
        url: URL,
        route: str,
        token: str | None,
        json: Any,
        query: dict[str, str],
        file: VerifiedUpload | InlineAudioBody | None,
    ) -> Answer:
        """One attempt, inside a governor slot; transport failures become NotSent/OutcomeUnknown.

        The upload body streams from the file in chunks read in a thread, with the exact
        Content-Length preflight measured, so memory does not grow with the file; the chunks
        re-check the file's size and sha256 and abort the body if it changed (`VerifiedUpload`),
        which is the file's problem (`AudioUnreadable`), never an unknown outcome.
        Uploads get per-read timeouts instead of a total, since a large file takes long.
        """
        if self._session is None:
            raise RuntimeError("ApiClient is not open: use `async with ApiClient(...)`")
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        if file is not None:
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=self.request_timeout, sock_read=self.request_timeout
            )
        else:
            timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        async with self.governor.slot(upload=file is not None):
            try:
                return await self._exchange(
                    self._session, method, url, route, headers, timeout, json, query, file
                )
            except ApiError:
                if file is not None and file.failure is not None:
                    raise file.failure from None  # the file, not the network, stopped it
                raise

    async def _exchange(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: URL,
        route: str,
        headers: dict[str, str],
        client_timeout: aiohttp.ClientTimeout,
        json: Any,
        query: dict[str, str],
        file: VerifiedUpload | InlineAudioBody | None,
    ) -> Answer:
        """The request itself; transport failures become NotSent/OutcomeUnknown."""
        try:
            data: Any = None
            if file is not None:
                inline = isinstance(file, InlineAudioBody)
                headers["Content-Type"] = file.content_type if inline else OCTET_STREAM
                headers["Content-Length"] = str(file.size)
                data = file.chunks()
            async with session.request(
                method,
                url,
                params=query or None,
                json=json,
                data=data,
                headers=headers,
                timeout=client_timeout,
                # A redirect would resend the Authorization header to a place we did not
                # choose; the contract has none, so one is an error answer, not followed.
                allow_redirects=False,
            ) as response:
                body = await response.read()
                return Answer(response.status, response.headers, body)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise NotSent(
                describe(exc), method=method, route=route
            ) from None  # the cause may hold request info with headers: not chained
        except TimeoutError as exc:
            raise OutcomeUnknown(
                f"no answer within {self.request_timeout:g} s ({describe(exc)})",
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
