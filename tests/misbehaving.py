"""A misbehaving middlebox for tests: an aiohttp proxy in front of the emulator that answers
some requests in the server's place, the way load balancers, proxies and caches do
(api-contract.md §5): huge or gzip-bomb bodies, trickles, redirects, odd Retry-After values,
endless pages, answers about another resource, lost answers after the call took effect.

    async with running_emulator() as emu, misbehaving(emu.root_url) as proxy:
        proxy.on("POST", r":compute$", lost_after_forwarding(), times=1)
        url = proxy.base_url          # give this to the worker instead of emu.base_url

A rule matches a method and a regular expression searched in the path; its `act` gets the
request and a `forward()` that sends it on to the emulator and returns the emulator's answer.
Requests no rule takes are forwarded untouched. `seen` lists every request that reached it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import re
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from tests.support import free_port

HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}


@dataclass
class Upstream:
    """The emulator's answer to a forwarded request."""

    status: int
    headers: dict[str, str]
    body: bytes

    def respond(self, **changes: object) -> web.Response:
        """This answer as the proxy's own, with `status`, `body` or `headers` changed."""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
        headers.update(changes.get("headers", {}))  # type: ignore[call-overload]
        body = changes.get("body", self.body)
        status = changes.get("status", self.status)
        return web.Response(status=status, body=body, headers=headers)  # type: ignore[arg-type]


Forward = Callable[[], Awaitable[Upstream]]
Act = Callable[[web.Request, Forward], Awaitable[web.StreamResponse]]


@dataclass
class Rule:
    method: str
    path: re.Pattern[str]
    act: Act
    times: int | None  # None: every time
    used: int = 0


@dataclass
class Proxy:
    """The running proxy: `base_url` (with /v1), its `rules`, and every request it `seen`."""

    upstream: str
    port: int
    rules: list[Rule] = field(default_factory=list)
    seen: list[tuple[str, str]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def on(self, method: str, path: str, act: Act, *, times: int | None = None) -> Rule:
        """Answer `method` requests whose path matches `path` with `act` (`times` at most)."""
        rule = Rule(method, re.compile(path), act, times)
        self.rules.append(rule)
        return rule

    def used(self, rule: Rule) -> int:
        return rule.used


async def _forward(session: aiohttp.ClientSession, upstream: str, request: web.Request) -> Upstream:
    body = await request.read()
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
    headers["Accept-Encoding"] = "identity"
    async with session.request(
        request.method,
        upstream + request.path_qs,
        data=body or None,
        headers=headers,
        allow_redirects=False,
    ) as resp:
        return Upstream(resp.status, dict(resp.headers), await resp.read())


@contextlib.asynccontextmanager
async def misbehaving(upstream_root: str) -> AsyncIterator[Proxy]:
    """The proxy on a free port of 127.0.0.1, in front of `upstream_root` (no /v1)."""
    proxy = Proxy(upstream_root, free_port())
    session = aiohttp.ClientSession(auto_decompress=False)

    async def handle(request: web.Request) -> web.StreamResponse:
        proxy.seen.append((request.method, request.path))

        async def forward() -> Upstream:
            return await _forward(session, upstream_root, request)

        for rule in proxy.rules:
            if rule.method != request.method or not rule.path.search(request.path):
                continue
            if rule.times is not None and rule.used >= rule.times:
                continue
            rule.used += 1
            return await rule.act(request, forward)
        return (await forward()).respond()

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", proxy.port)
    await site.start()
    try:
        yield proxy
    finally:
        await runner.cleanup()
        await session.close()


# --- acts -------------------------------------------------------------------------------------


def huge_body(size: int, *, status: int = 200, forward_first: bool = False) -> Act:
    """An answer of `size` bytes (JSON-looking, streamed), whatever was asked; with
    `forward_first`, after the request took effect on the emulator."""

    async def act(request: web.Request, forward: Forward) -> web.StreamResponse:
        if forward_first:
            await forward()
        response = web.StreamResponse(status=status, headers={"Content-Type": "application/json"})
        response.content_length = size
        await response.prepare(request)
        block = b"[" + b" " * (1024 * 1024 - 1)
        sent = 0
        with contextlib.suppress(ConnectionError):
            while sent < size:
                part = block[: min(len(block), size - sent)]
                await response.write(part)
                sent += len(part)
                block = b" " * len(block)
        return response

    return act


def gzip_bomb(inflated: int) -> Act:
    """A small gzip body that inflates to `inflated` bytes of spaces (made a MiB at a time)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block, parts = b" " * (1024 * 1024), []
    for start in range(0, inflated, len(block)):
        parts.append(packer.compress(block[: inflated - start]))
    raw = b"".join(parts) + packer.flush()

    async def act(request: web.Request, forward: Forward) -> web.StreamResponse:
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        return web.Response(status=200, body=raw, headers=headers)

    return act


def gzipped() -> Act:
    """The emulator's true answer, gzip-encoded (a well-behaved compressing proxy)."""

    async def act(request: web.Request, forward: Forward) -> web.StreamResponse:
        up = await forward()
        return up.respond(body=gzip.compress(up.body), headers={"Content-Encoding": "gzip"})

    return act


def trickle(every: float, *, forward_first: bool = False) -> Act:
    """Headers at once, then one byte of body every `every` seconds, without end."""

    async def act(request: web.Request, forward: Forward) -> web.StreamResponse:
        await request.read()
        if forward_first:
            await forward()
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            while True:
                await response.write(b" ")
                await asyncio.sleep(every)
        return response

    return act


def redirect(location: str, status: int = 307) -> Act:
    async def act(request: web.Request, forward: Forward) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": location}, text="moved")

    return act


def status_with(status: int, headers: dict[str, str], text: str = "") -> Act:
    """A fixed answer, never forwarded."""

    async def act(request: web.Request, forward: Forward) -> web.StreamResponse:
        return web.Response(status=status, headers=headers, text=text)

    return act


def lost_after_forwarding() -> Act:
    """Forward (the call takes effect), then drop the connection: the answer is lost."""

    async def act(request: web.Request, forward: Forward) -> web.StreamResponse:
        await forward()
        assert request.transport is not None
        request.transport.close()
        raise asyncio.CancelledError  # aiohttp ends the handler; the client sees a reset

    return act


def replaced_after_forwarding(body: bytes, status: int = 200) -> Act:
    """Forward (the call takes effect), then answer `body` instead of the emulator's answer."""

    async def act(request: web.Request, forward: Forward) -> web.StreamResponse:
        await forward()
        return web.Response(status=status, body=body, content_type="application/json")

    return act


def rewritten(change: Callable[[Upstream], web.Response]) -> Act:
    """Forward, then answer what `change` makes of the emulator's answer."""

    async def act(request: web.Request, forward: Forward) -> web.StreamResponse:
        return change(await forward())

    return act
