"""The request loop: one operation sent until it succeeds or an error must go to the caller.

Owns: the loop around attempts (each one a `Transport.send` inside a governor slot, behind the
send gate), acting on what retry_rules.py says each failure means: sign in again, mark the
credits, wait out a throttle, back off and resend, or raise. Also parsing answers into the wire
models and walking paginated lists. It never decides a reason itself, and never builds a
resource's route or body (the resource groups identities.py, audios.py, voiceprints.py and
records.py do, each holding the loop).
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

import anyio
import structlog
from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError

from worker.api import retry_rules as rules
from worker.api.auth import Authenticator, CredentialsAuth
from worker.api.backoff import RetryPolicy
from worker.api.errors import (
    ApiError,
    Conflict,
    InvalidResponse,
    NotSent,
    OutcomeUnknown,
    error_from_response,
    server_message,
)
from worker.api.governor import Governor, RequestMeter, SendGate
from worker.api.inline import InlineAudioBody
from worker.api.outage import OutageTracker
from worker.api.retry_rules import Retry
from worker.api.schemas import Credentials, Page, TokenResponse, User
from worker.api.transport import (
    Answer,
    Query,
    Request,
    Transport,
    header_int,
    query_params,
    route_url,
)
from worker.audio.files import VerifiedUpload

M = TypeVar("M", bound=BaseModel)

# Throttle waits this long or longer are logged as warnings (an operator may want to know).
LONG_THROTTLE_S = 30.0

# Metrics hook: (method, route template, status code or transport failure kind) for every
# attempt. Never given the URL, headers or body (they may hold secrets).
AttemptHook = Callable[[str, str, str], None]


class RequestLoop:
    """Sends operations: the auth, the transport and the governor, put together by `ApiClient`.

    `gated(send_gate)` is the same loop (same token, transport, governor and hook) whose every
    attempt first passes `send_gate`: a job's view of the process's one client.
    """

    def __init__(
        self,
        base_url: str,
        auth: Authenticator,
        transport: Transport,
        governor: Governor,
        *,
        retry: RetryPolicy,
        rand: Callable[[], float],
        clock: Callable[[], float],
    ) -> None:
        self.base_url = base_url
        self.auth = auth
        self.transport = transport
        self.governor = governor
        self.retry = retry
        self.send_gate: SendGate | None = None  # a job's view passes its gate (`gated`)
        self.meter: RequestMeter | None = None  # a job's view counts its requests here
        self._rand = rand
        self._clock = clock
        self._hooks: list[AttemptHook] = []  # shared with every gated view (see `on_attempt`)
        self.outage = OutageTracker()  # shared with every gated view, like the hooks
        self._log = structlog.get_logger("worker.api")

    def gated(self, send_gate: SendGate, meter: RequestMeter | None = None) -> RequestLoop:
        """This loop, with every attempt passing `send_gate` before it leaves (and counted in
        `meter`, when given)."""
        view = copy.copy(self)  # shares the authenticator, transport, governor and hooks
        view.send_gate, view.meter = send_gate, meter
        return view

    @property
    def on_attempt(self) -> AttemptHook | None:
        return self._hooks[0] if self._hooks else None

    @on_attempt.setter
    def on_attempt(self, hook: AttemptHook | None) -> None:
        self._hooks[:] = [hook] if hook is not None else []

    async def call(
        self,
        method: str,
        route: str,
        *,
        path: Mapping[str, str] | None = None,
        json: Any = None,
        params: Query | None = None,
        file: VerifiedUpload | InlineAudioBody | None = None,
        retry: Retry = Retry.SAFE,
        compute: bool = False,
        auth: bool = True,
    ) -> Answer:
        """Send one operation until it succeeds or an error must go to the caller."""
        url, query = route_url(self.base_url, route, path or {}), query_params(params or {})
        unsigned = Request(method, url, route, None, json, query, file)
        started = self._clock()
        attempts = throttles = 0
        so_far = rules.Attempts()
        credentials = auth and self.auth.credentials is not None
        while True:
            if compute or self.governor.billed(route):
                self.governor.check_credits()
            token, generation = await self.auth.bearer(self._sign_in) if auth else (None, 0)
            attempts += 1
            error = await self._attempt(replace(unsigned, token=token))
            if isinstance(error, Answer):
                return error  # the attempt succeeded: its answer, not an error
            error.attempts = attempts
            so_far = replace(so_far, elapsed=self._clock() - started)
            status = getattr(error, "status", None)
            step = rules.next_step(
                error,
                method=method,
                retry=retry,
                credentials=credentials,
                so_far=so_far,
                policy=self.retry,
                jitter=self._rand,
            )
            match step:
                case rules.SignInAgain():
                    so_far = replace(so_far, renewed=True)
                    await self.auth.renew(generation, self._sign_in)
                case rules.OutOfCredits():
                    self.governor.mark_credits_exhausted(error)
                    raise error
                case rules.Throttled(wait=wait):
                    throttles += 1
                    started += wait  # the wait is the server's, not a failure's
                    self._throttled(wait, method, route, attempts, throttles)
                case rules.RetryIn(delay=delay, unknown=unknown):
                    so_far = replace(
                        so_far,
                        retries=so_far.retries + 1,
                        unknown_before=so_far.unknown_before or unknown,
                    )
                    await self._back_off(delay, error, method, route, status, attempts)
                case rules.Stop(error=final, gave_up=gave_up, own_effect=own_effect):
                    self._stop(final, gave_up, own_effect, method, route, status, attempts)

    def _throttled(
        self, wait: float, method: str, route: str, attempts: int, throttles: int
    ) -> None:
        """Pause the whole governor for the server's wait; a long one is worth a warning."""
        self.governor.throttled(wait)
        log = self._log.warning if wait >= LONG_THROTTLE_S else self._log.info
        log(
            "api.throttled",
            method=method,
            route=route,
            retry_after=round(wait, 3),
            attempt=attempts,
            throttles=throttles,
        )

    async def _back_off(
        self,
        delay: float,
        error: ApiError,
        method: str,
        route: str,
        status: int | None,
        attempts: int,
    ) -> None:
        self.governor.retried()
        # In a declared outage the tracker has said it once; each attempt is detail.
        say = self._log.debug if self.outage.active else self._log.warning
        say(
            "api.retry",
            method=method,
            route=route,
            status=status,
            error=type(error).__name__,
            attempt=attempts,
            delay=round(delay, 3),
        )
        await anyio.sleep(delay)

    async def _attempt(self, request: Request) -> Answer | ApiError:
        """One attempt: a success as its answer, any failure as its error (not raised)."""
        method, route = request.method, request.route
        try:
            async with self.governor.slot(
                upload=request.file is not None, gate=self.send_gate, meter=self.meter
            ):
                answer = await self.transport.send(request)
        except (NotSent, OutcomeUnknown) as exc:
            kind = getattr(exc, "kind", "not_sent")
            self.outage.failed(kind)
            if self._hooks:
                self._hooks[0](method, route, kind)
            return exc
        if answer.status >= 500:
            self.outage.failed(str(answer.status))
        else:
            self.outage.answered()
        if self._hooks:
            self._hooks[0](method, route, str(answer.status))
        if answer.status < 400:
            self.governor.succeeded()
            return answer
        message = self.auth.scrub(server_message(answer.body, f"HTTP {answer.status}"))
        return error_from_response(
            answer.status, message, answer.headers, method=method, route=route
        )

    async def _sign_in(self, credentials: CredentialsAuth) -> SecretStr:
        """`POST /auth/credentials`. SAFE: each call just issues another session token."""
        body = Credentials(handle=credentials.handle, password=credentials.password).to_wire()
        answer = await self.call("POST", "/auth/credentials", json=body, auth=False)
        return self.parse(answer, TokenResponse, "POST", "/auth/credentials").token

    async def user(self) -> User:
        """`GET /user`: the caller's handle and orgs (SAFE). Cached after the first call."""
        if self.auth.user is None:
            self.auth.user = await self.get("/user", User)
        return self.auth.user

    def _stop(
        self,
        error: ApiError,
        gave_up: bool,
        own_effect: bool,
        method: str,
        route: str,
        status: int | None,
        attempts: int,
    ) -> None:
        """Raise the final error, flagged and logged as `retry_rules.Stop` says."""
        if own_effect and isinstance(error, Conflict):
            error.after_unknown_outcome = True
        if gave_up:
            (self._log.debug if self.outage.active else self._log.warning)(
                "api.gave_up",
                method=method,
                route=route,
                status=status,
                error=type(error).__name__,
                attempts=attempts,
            )
        raise error

    # --- parsing ----------------------------------------------------------------------------

    def parse(self, answer: Answer, model: type[M], method: str, route: str) -> M:
        try:
            return model.model_validate_json(answer.body)
        except ValidationError as exc:
            raise InvalidResponse(validation_summary(exc), method=method, route=route) from None

    def parse_list(self, answer: Answer, model: type[M], method: str, route: str) -> list[M]:
        try:
            return TypeAdapter(list[model]).validate_json(answer.body)  # type: ignore[valid-type]
        except ValidationError as exc:
            raise InvalidResponse(validation_summary(exc), method=method, route=route) from None

    async def get(self, route: str, model: type[M], **path: str) -> M:
        answer = await self.call("GET", route, path=path)
        return self.parse(answer, model, "GET", route)

    async def get_page(
        self, route: str, model: type[M], path: Mapping[str, str], params: Query
    ) -> Page[M]:
        """One page of a list; `params` holds page, page-size, sort, search, after, before."""
        answer = await self.call("GET", route, path=path, params=params)
        items = self.parse_list(answer, model, "GET", route)
        asked_page, asked_size = params.get("page"), params.get("page-size")
        return Page[model](  # type: ignore[valid-type]
            items=items,
            page_current=header_int(answer.headers, "Page-Current")
            or (asked_page if isinstance(asked_page, int) else 1),
            page_total=header_int(answer.headers, "Page-Total"),
            page_size=header_int(answer.headers, "Page-Size")
            or (asked_size if isinstance(asked_size, int) else None),
            item_total=header_int(answer.headers, "Item-Total"),
        )

    async def paginate(
        self,
        route: str,
        model: type[M],
        path: Mapping[str, str],
        *,
        page_size: int = 50,
        sort: str | None = None,
        search: str | None = None,
        after: datetime | None = None,
        before: datetime | None = None,
        read_ahead: int = 1,
        first_page: int = 1,
        on_page: Callable[[Page[M]], None] | None = None,
    ) -> AsyncIterator[M]:
        """Every item of a list, page after page, following `Page-Current` / `Page-Total`.

        A page is read whole before its items are yielded, so stopping early holds no
        connection. Items created while iterating may be missed or seen twice unless the list
        is sorted by a creation time; reconcile code sorts by `createdAt`.

        `read_ahead` > 1 fetches that many pages at once once page 1 has told the page total:
        a long list then costs about pages / read_ahead round trips instead of one per page,
        still paced by the governor, and at most `read_ahead` pages are held in memory. Only
        safe for lists sorted so that new items land at the end (pages already counted do
        not shift); without a page total it falls back to one page after another.

        `first_page` > 1 goes on from there (the pages before were read earlier); `on_page`
        is shown each page read, headers and all, before its items are yielded.
        """
        params: dict[str, Any] = {
            "page-size": page_size,
            "sort": sort,
            "search": search,
            "after": after,
            "before": before,
        }
        page, last = first_page, None
        while last is None:
            result = await self.get_page(route, model, path, {**params, "page": page})
            if on_page is not None:
                on_page(result)
            for item in result.items:
                yield item
            if result.is_last or not result.items:
                return
            page = result.page_current + 1
            if read_ahead > 1:
                last = result.page_total  # known: fetch the rest in windows below
        while page <= last:
            numbers = range(page, min(page + read_ahead, last + 1))
            pages = await self._read_window(route, model, path, params, numbers)
            for number in numbers:
                if on_page is not None:
                    on_page(pages[number])
                for item in pages[number].items:
                    yield item
            page = numbers[-1] + 1

    async def _read_window(
        self,
        route: str,
        model: type[M],
        path: Mapping[str, str],
        params: Mapping[str, Any],
        numbers: range,
    ) -> dict[int, Page[M]]:
        """The pages `numbers` of a list, read at once (each still paced by the governor)."""
        pages: dict[int, Page[M]] = {}

        async def fetch(number: int) -> None:
            pages[number] = await self.get_page(route, model, path, {**params, "page": number})

        async with anyio.create_task_group() as tg:
            for number in numbers:
                tg.start_soon(fetch, number)
        return pages


def validation_summary(exc: ValidationError) -> str:
    """Where and why a body failed validation, without the offending values (may be secret)."""
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False)[:5]
    ]
    return "unexpected response body: " + "; ".join(parts)
