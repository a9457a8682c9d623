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
import hashlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
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
    redirect_error,
    server_message,
)
from worker.api.governor import Governor, RequestMeter, SendGate
from worker.api.inline import InlineAudioBody
from worker.api.outage import OutageTracker
from worker.api.pages import walk
from worker.api.pause import ServerPause
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
from worker.config.settings import setting_default

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
        max_pages: int = setting_default("max_list_pages"),
        pause: ServerPause | None = None,
    ) -> None:
        self.base_url = base_url
        self.pause = pause if pause is not None else ServerPause(setting_default("max_retry_after"))
        self.auth = auth
        self.transport = transport
        self.governor = governor
        self.retry = retry
        self.max_pages = max_pages
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
        started, attempts, so_far = self._clock(), 0, rules.Attempts()
        credentials = auth and self.auth.credentials is not None
        while True:
            self.pause.check(method=method, route=route)  # --once does not wait a long pause
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
                max_wait=self.pause.max_wait,
            )
            match step:
                case rules.SignInAgain():
                    so_far = replace(so_far, renewed=True)
                    await self.auth.renew(generation, self._sign_in)
                case rules.OutOfCredits():
                    self.governor.mark_credits_exhausted(error)
                    raise error
                case rules.Throttled(wait=wait) | rules.WaitLong(wait=wait):
                    so_far = replace(so_far, throttles=so_far.throttles + 1)
                    started += wait  # the wait is the server's, not a failure's
                    self._throttled(step, method, route, attempts, so_far.throttles)
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
        self,
        step: rules.Throttled | rules.WaitLong,
        method: str,
        route: str,
        attempts: int,
        throttles: int,
    ) -> None:
        """Pause the whole governor for the server's wait; a long one is worth a warning, and
        one above the bound is declared as a pause (`pause.py`: `run --once` stops for it)."""
        wait = step.wait
        if isinstance(step, rules.WaitLong):
            self.pause.declare(wait, route=route)
            if self.pause.stops_requests:
                return  # not waited: the call raises `ApiPaused`, and so do the others
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
        if 300 <= answer.status < 400:
            location = answer.headers.get("Location")
            return redirect_error(answer.status, location, method=method, route=route)
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
            fingerprint=hashlib.blake2b(answer.body, digest_size=16).hexdigest(),
        )

    def paginate(
        self, route: str, model: type[M], path: Mapping[str, str], **options: Any
    ) -> AsyncIterator[M]:
        """Every item of a list, page after page, inside the bounds of `pages.walk` (which
        says what `options` are)."""
        return walk(self, route, model, path, max_pages=self.max_pages, **options)


def validation_summary(exc: ValidationError) -> str:
    """Where and why a body failed validation, without the offending values (may be secret)."""
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False)[:5]
    ]
    return "unexpected response body: " + "; ".join(parts)
