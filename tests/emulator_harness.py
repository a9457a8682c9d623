"""Run the emulator for a test: in-process (fast) or as a separate process (for kill/restart).

    async with running_emulator(rate_limit=5, burst=5) as emu:
        url = emu.base_url                      # "http://127.0.0.1:PORT/v1"
        stats = await emu.stats()               # GET /_emulator/stats
        await emu.restart()                     # same port; keeps state if state_file was given

    async with emulator_process(state_file=path) as proc:
        proc.kill()                             # SIGKILL, no goodbye
        await proc.restart()                    # same port, same state file

Options are `emulator.config.EmulatorOptions` fields (`rate_limit`, `burst`, `credits`,
`latency_ms`, `fault_rate`, `seed`, `state_file`, `token_ttl`, `config`, `max_upload_bytes`,
and the switches `no_voiceprint_rename=True`, `no_voiceprint_delete=True`), the same for both.
The default port is 0 (a free one). Seeded world: API keys `demo-key` (user demo, org acme) and
`other-key`; spaces `demo/main`, `acme/onboarding`, `other/private`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

import emulator.server as server_module
from emulator.config import EmulatorOptions
from emulator.routes.common import Emulator
from emulator.server import EmulatorServer

DEMO_KEY = "demo-key"
OTHER_KEY = "other-key"
READY_TIMEOUT_S = 20.0
_OWN_TOKEN: Any = object()  # `call(token=None)` sends no token; omitted = the client's own
_READY = re.compile(r"emulator listening on (?P<url>http://\S+/v1)")


def auth(token: str = DEMO_KEY) -> dict[str, str]:
    """The Authorization header for `token`."""
    return {"Authorization": f"Bearer {token}"}


async def _get_json(url: str, method: str = "GET") -> Any:
    async with aiohttp.ClientSession() as session, session.request(method, url) as resp:
        resp.raise_for_status()
        return await resp.json()


@dataclass(frozen=True)
class Reply:
    """One answer: status, parsed JSON body (None when not JSON), headers."""

    status: int
    body: Any
    headers: Mapping[str, str]


class ApiClient:
    """A thin raw client for emulator tests: no retries, no parsing beyond JSON.

    `call()` never raises on an HTTP status, so tests can assert on every error.
    """

    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str | None) -> None:
        self.session = session
        self.base_url = base_url
        self.token = token

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: Any = _OWN_TOKEN,
        **kwargs: Any,
    ) -> Reply:
        headers = dict(kwargs.pop("headers", None) or {})
        bearer = self.token if token is _OWN_TOKEN else token
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        async with self.session.request(
            method, self.base_url + path, headers=headers, **kwargs
        ) as resp:
            text = await resp.text()
            try:
                body = json.loads(text) if text else None
            except ValueError:
                body = None
            return Reply(resp.status, body, resp.headers)

    async def get(self, path: str, **kwargs: Any) -> Reply:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Reply:
        return await self.call("POST", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> Reply:
        return await self.call("DELETE", path, **kwargs)


@contextlib.asynccontextmanager
async def api_client(base_url: str, token: str | None = DEMO_KEY) -> AsyncIterator[ApiClient]:
    """An `ApiClient` on its own session, authenticated as `token` (default: user demo)."""
    async with aiohttp.ClientSession() as session:
        yield ApiClient(session, base_url, token)


@dataclass(frozen=True)
class Seen:
    """One API request as it arrived: method, path (with /v1), query string, bearer token."""

    method: str
    path: str
    query: str
    token: str = ""

    def mentions(self, handle: str) -> bool:
        """Whether `handle` is a whole segment of the path (…/identities/ann, …/ann/vp:compute)."""
        return handle in re.split(r"[/:]", self.path)


class RecordingServer(EmulatorServer):
    """The real emulator server, plus a log of every request it received (`requests`).

    Outermost middleware, so it sees every request before latency, limits or faults; the
    emulator itself is untouched.
    """

    def __init__(
        self, options: EmulatorOptions, clock: Callable[[], datetime] | None = None
    ) -> None:
        super().__init__(options, clock)
        self.requests: list[Seen] = []

    async def start(self) -> None:
        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
            self.requests.append(Seen(request.method, request.path, request.query_string, bearer))
            return await handler(request)

        build = server_module.build_app

        def build_recording(emulator: Emulator) -> web.Application:
            app = build(emulator)
            app.middlewares.insert(0, record)
            return app

        server_module.build_app = build_recording  # type: ignore[assignment]
        try:
            await super().start()  # builds the app before its first await
        finally:
            server_module.build_app = build


@dataclass
class EmulatorHandle:
    """An in-process emulator. `.emulator` exposes its state for white-box assertions;
    `.requests` lists every request received since the last (re)start."""

    options: EmulatorOptions
    server: RecordingServer
    clock: Callable[[], datetime] | None = None  # the emulator's time (tokens, processing)

    @property
    def requests(self) -> list[Seen]:
        return self.server.requests

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def root_url(self) -> str:
        return self.server.root_url

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def emulator(self) -> Emulator:
        return self.server.emulator

    def client(
        self, token: str | None = DEMO_KEY
    ) -> contextlib.AbstractAsyncContextManager[ApiClient]:
        """`async with emu.client() as api:` a raw client authenticated as `token`."""
        return api_client(self.base_url, token)

    async def stats(self) -> dict[str, Any]:
        """`GET /_emulator/stats`, over the socket like any client."""
        return await _get_json(f"{self.root_url}/_emulator/stats")

    async def reset_stats(self) -> dict[str, Any]:
        return await _get_json(f"{self.root_url}/_emulator/stats", "DELETE")

    async def stop(self) -> None:
        await self.server.stop()

    async def restart(self, **changes: Any) -> None:
        """Stop, then start again on the same port with the same options (plus `changes`).

        State survives only when `state_file` is set. Stats start from zero.
        """
        await self.server.stop()
        data = {**self.options.model_dump(), "port": self.server.port, **changes}
        self.options = EmulatorOptions(**data)
        self.server = RecordingServer(self.options, self.clock)
        await self.server.start()


def _options(options: dict[str, Any]) -> EmulatorOptions:
    # Tests must not pick up a developer's EMULATOR_* variables.
    base = {f: EmulatorOptions.model_fields[f].default for f in EmulatorOptions.model_fields}
    return EmulatorOptions(**{**base, "port": 0, **options})


@contextlib.asynccontextmanager
async def running_emulator(
    *, clock: Callable[[], datetime] | None = None, **options: Any
) -> AsyncIterator[EmulatorHandle]:
    """An emulator in this process and event loop, on a free port of 127.0.0.1.

    With `clock` (e.g. `FakeClock().utc`), token expiry and the file and compute delays follow
    that clock: a test moves time instead of sleeping through it.
    """
    opts = _options(options)
    handle = EmulatorHandle(opts, RecordingServer(opts, clock), clock)
    await handle.server.start()
    try:
        yield handle
    finally:
        await handle.server.stop()


@dataclass
class EmulatorProcess:
    """An emulator in a child process (`python -m emulator`), for crash and restart tests."""

    options: dict[str, Any]
    process: asyncio.subprocess.Process | None = None
    base_url: str = ""
    stderr_path: Path = field(default_factory=lambda: Path(tempfile.mkstemp(suffix=".log")[1]))

    @property
    def root_url(self) -> str:
        return self.base_url.removesuffix("/v1")

    @property
    def port(self) -> int:
        return int(self.root_url.rsplit(":", 1)[1])

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def argv(self) -> list[str]:
        args = [sys.executable, "-m", "emulator"]
        for name, value in {"port": 0, **self.options}.items():
            flag = "--" + name.replace("_", "-")
            if isinstance(value, bool):  # a switch (--no-voiceprint-rename): given when on
                args += [flag] if value else []
            elif value is not None:
                args += [flag, str(value)]
        return args

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EMULATOR_")}
        with self.stderr_path.open("ab") as err:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv(), stdout=asyncio.subprocess.PIPE, stderr=err, env=env
            )
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                while True:
                    line = await self.process.stdout.readline()
                    if not line:
                        raise RuntimeError(f"emulator exited before ready:\n{self.stderr()}")
                    match = _READY.search(line.decode())
                    if match:
                        self.base_url = match.group("url")
                        return
        except BaseException:
            self.kill()
            await self.wait()
            raise

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    async def stats(self) -> dict[str, Any]:
        return await _get_json(f"{self.root_url}/_emulator/stats")

    def terminate(self) -> None:
        """SIGTERM: the emulator finishes in-flight requests and writes its state."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: a crash. What was acknowledged must still be in the state file."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()

    async def wait(self) -> int:
        assert self.process is not None
        code = await self.process.wait()
        if self.process.stdout is not None:
            await self.process.stdout.read()
        return code

    async def stop(self) -> int:
        self.terminate()
        return await self.wait()

    async def restart(self, **changes: Any) -> None:
        """Stop (SIGTERM) if running, then start on the same port with the same options."""
        port = self.port if self.base_url else 0
        if self.process is not None and self.process.returncode is None:
            await self.stop()
        self.options = {**self.options, "port": port, **changes}
        await self.start()


@contextlib.asynccontextmanager
async def emulator_process(**options: Any) -> AsyncIterator[EmulatorProcess]:
    """An emulator in a child process on a free port; stopped (SIGTERM, then SIGKILL) at exit."""
    proc = EmulatorProcess(options)
    await proc.start()
    try:
        yield proc
    finally:
        if proc.process is not None and proc.process.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        with contextlib.suppress(OSError):
            proc.stderr_path.unlink()
