"""What every route handler shares: the `Emulator` a request may touch, request bodies'
base and parsing, and the small helpers that answer (JSON, pages) and find the caller and
the space.

Owns: nothing of the contract's rules (state/ decides them) and no route of its own.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from emulator.config import EmulatorOptions
from emulator.faults import FaultInjector
from emulator.pagination import PageResult, PaginationError, parse_page_request
from emulator.persist import Persister
from emulator.ratelimit import RateLimiter
from emulator.records import Space, User, bad_request
from emulator.state import State
from emulator.stats import Stats

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


# --- request bodies ---------------------------------------------------------------------------


class Body(BaseModel):
    """Request bodies: unknown fields are ignored, as a tolerant service would."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return "invalid request body: " + "; ".join(parts)


async def read_body(request: web.Request, model: type[Body]) -> Any:
    raw = await request.read()
    if not raw.strip():
        raise bad_request("request body must be a JSON object")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise bad_request(validation_message(exc)) from None


# --- helpers ----------------------------------------------------------------------------------


def respond(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers)


def page_of(result: PageResult[Any], render: Callable[[Any], dict[str, Any]]) -> web.Response:
    return respond([render(it) for it in result.items], headers=result.headers())


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def emu_of(request: web.Request) -> Emulator:
    return request.app[EMULATOR]


def user_of(request: web.Request) -> User:
    return emu_of(request).state.authenticate(bearer(request))


def space_of(request: web.Request) -> tuple[State, User, Space]:
    state = emu_of(request).state
    user = state.authenticate(bearer(request))
    mi = request.match_info
    return state, user, state.space(user, mi["owner"], mi["space"])


def page_request(request: web.Request, sorts: list[str], searchable: bool = True) -> Any:
    try:
        return parse_page_request(request.query, sorts, searchable=searchable)
    except PaginationError as exc:
        raise bad_request(str(exc)) from None


async def commit(request: web.Request) -> None:
    await emu_of(request).persister.commit()
