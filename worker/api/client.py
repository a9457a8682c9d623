"""`ApiClient`: typed async methods over one aiohttp session, inside the shared governor.

Owns: building requests (URL from a route template, auth header, JSON or a streamed file),
sending them through the governor, classifying answers into the error tree, and the retry
loop. Must never hold or log a secret in clear outside the Authorization header it sends: logs
and errors name the route *template*, never the URL's query, headers, key, password or token.

Retry rules, per operation (each method's docstring says which applies):

- SAFE: repeating the request cannot do anything twice — reads, and writes the server answers
  with 409 when they were already done (handle-keyed creates, add-audio, compute, the file
  upload). Retried on 5xx, timeouts and connection errors, with full-jitter backoff bounded by
  `RetryPolicy`. A 409 on a retry after an unknown outcome is flagged
  `Conflict.after_unknown_outcome`: most likely the earlier attempt's own effect.
- UNSAFE: the server assigns the handle, so a repeat would create a second resource (audio
  create, verification, a voiceprint created without a handle). Retried only when the request
  certainly did not take effect (`NotSent`, 429); a timeout, reset or 5xx raises
  `OutcomeUnknown` at once so that the caller reconciles (e.g. searches the `sha256:` alias).
- Every call: 429 + Retry-After (seconds or an HTTP-date) pauses the whole governor until
  then, however long, and the call is resent: throttling is never a failure and uses neither
  `max_retries` nor `max_time`. A 429 without Retry-After is credits whatever its wording: it
  marks the governor and is raised, and computes (and any route so refused) are refused
  locally from then on, until `credits_recheck`. A 401 in credentials mode signs in again
  once and resends.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import aiohttp
import anyio
import anyio.to_thread
import structlog
from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError
from yarl import URL

from worker.api.backoff import RetryPolicy, next_delay
from worker.api.errors import (
    ApiError,
    Conflict,
    CreditsExhausted,
    InvalidResponse,
    NotSent,
    OutcomeUnknown,
    RateLimited,
    ServerError,
    Unauthorized,
    error_from_response,
    server_message,
)
from worker.api.governor import Governor
from worker.api.inline import InlineAudioBody
from worker.api.schemas import (
    Audio,
    AudioCreate,
    AudioIdentify,
    Credentials,
    Credits,
    Identity,
    IdentityCreate,
    Model,
    Page,
    TokenResponse,
    UsageRecord,
    User,
    Verification,
    VerificationCreate,
    Voiceprint,
    VoiceprintCreate,
)
from worker.audiofile import VerifiedUpload
from worker.log import MASK, REDACTOR
from worker.settings import Settings

M = TypeVar("M", bound=BaseModel)

USER_AGENT = "voiceprint-enroller/0.1"
OCTET_STREAM = "application/octet-stream"
# A 429 whose Retry-After cannot be read still asks us to wait: this long, then try again.
UNREADABLE_WAIT_S = 1.0
# Throttle waits this long or longer are logged as warnings (an operator may want to know).
LONG_THROTTLE_S = 30.0


class Retry(enum.Enum):
    """Whether a request may be repeated after an unknown outcome (see the module docstring)."""

    SAFE = "safe"
    UNSAFE = "unsafe"


@dataclass(frozen=True, slots=True)
class ApiKeyAuth:
    """A long-lived API key, sent as the Bearer token of every request."""

    key: SecretStr


@dataclass(frozen=True, slots=True)
class CredentialsAuth:
    """A user handle and password, exchanged for a session token on first use."""

    handle: str
    password: SecretStr


Auth = ApiKeyAuth | CredentialsAuth


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


Query = Mapping[str, str | int | datetime | None]


def _query(params: Query) -> dict[str, str]:
    """Query parameters on the wire: None dropped, dates as ISO-8601 UTC with a Z."""
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            value = value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        out[key] = str(value)
    return out


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    try:
        return int(headers[name])
    except (KeyError, ValueError):
        return None


class ApiClient:
    """The worker's only door to the API. Use as `async with ApiClient.from_settings(s) as api:`.

    One `aiohttp.ClientSession` per client, its connection pool sized to the governor's
    in-flight cap, so that a request holding an in-flight place never waits for a connection.
    Several clients may share one `Governor` (it is the process-wide budget).
    """

    def __init__(
        self,
        base_url: str,
        auth: Auth,
        *,
        governor: Governor | None = None,
        request_timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._auth = auth
        self.governor = governor if governor is not None else Governor(20.0)
        self.request_timeout = request_timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self._rand = rand
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._token: SecretStr | None = None
        self._token_generation = 0
        self._auth_lock = anyio.Lock()
        self._user: User | None = None
        self._log = structlog.get_logger("worker.api")
        # Metrics hook: (method, route template, status code or transport failure kind) for
        # every attempt. Never given the URL, headers or body (they may hold secrets).
        self.on_attempt: Callable[[str, str, str], None] | None = None
        # Defence in depth: whatever logging the CLI configured masks these values too.
        for secret in self._secrets():
            REDACTOR.add(secret)

    @classmethod
    def from_settings(cls, settings: Settings, governor: Governor | None = None) -> ApiClient:
        """The client the worker uses: auth, timeouts, retry bounds and budget from Settings."""
        auth: Auth
        if settings.api_key is not None:
            auth = ApiKeyAuth(settings.api_key)
        elif settings.api_handle and settings.api_password is not None:
            auth = CredentialsAuth(settings.api_handle, settings.api_password)
        else:
            raise ValueError(
                "no API credentials: set ENROLLER_API_KEY (or ENROLLER_API_KEY_FILE), "
                "or ENROLLER_API_HANDLE and ENROLLER_API_PASSWORD"
            )
        return cls(
            settings.api_url,
            auth,
            governor=governor if governor is not None else Governor.from_settings(settings),
            request_timeout=settings.request_timeout,
            retry=RetryPolicy(max_retries=settings.max_retries, max_time=settings.retry_max_time),
        )

    def __repr__(self) -> str:
        mode = "api-key" if isinstance(self._auth, ApiKeyAuth) else f"user {self._auth.handle}"
        return f"ApiClient({self.base_url!r}, auth={mode})"

    # --- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        connector = aiohttp.TCPConnector(limit=self.governor.max_in_flight, limit_per_host=0)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    # --- secrets ----------------------------------------------------------------------------

    def _secrets(self) -> list[str]:
        out = []
        if isinstance(self._auth, ApiKeyAuth):
            out.append(self._auth.key.get_secret_value())
        else:
            out.append(self._auth.password.get_secret_value())
        if self._token is not None:
            out.append(self._token.get_secret_value())
        return [s for s in out if s]

    def _scrub(self, text: str) -> str:
        """Server text may echo what we sent; mask our secrets before it reaches an error."""
        for secret in self._secrets():
            text = text.replace(secret, MASK)
        return text

    async def _bearer(self) -> tuple[str, int]:
        """The token to send and its generation (which sign-in produced it)."""
        if isinstance(self._auth, ApiKeyAuth):
            return self._auth.key.get_secret_value(), 0
        if self._token is None:
            async with self._auth_lock:
                if self._token is None:
                    await self._sign_in()
        assert self._token is not None
        return self._token.get_secret_value(), self._token_generation

    async def _renew(self, generation: int) -> None:
        """Sign in again, unless another task already did since `generation` was used."""
        async with self._auth_lock:
            if self._token_generation == generation:
                self.governor.renewed()
                self._log.info("api.sign_in_again", reason="401")
                await self._sign_in()

    async def _sign_in(self) -> None:
        """`POST /auth/credentials`. SAFE: each call just issues another session token."""
        assert isinstance(self._auth, CredentialsAuth)
        body = Credentials(handle=self._auth.handle, password=self._auth.password).to_wire()
        answer = await self._call("POST", "/auth/credentials", json=body, auth=False)
        token = self._parse(answer, TokenResponse, "POST", "/auth/credentials").token
        self._token = token
        self._token_generation += 1
        REDACTOR.add(token.get_secret_value())

    # --- the request loop -------------------------------------------------------------------

    def _url(self, route: str, path: Mapping[str, str]) -> URL:
        quoted = {k: quote(v, safe="") for k, v in path.items()}
        return URL(self.base_url + route.format(**quoted), encoded=True)

    async def _call(
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
    ) -> _Answer:
        """Send one operation until it succeeds or an error must go to the caller."""
        url = self._url(route, path or {})
        query = _query(params or {})
        policy = self.retry
        started = self._clock()
        attempts = retries = throttles = 0
        renewed = unknown_before = False
        while True:
            if compute or self.governor.billed(route):
                self.governor.check_credits()
            token, generation = await self._bearer() if auth else (None, 0)
            attempts += 1
            error: ApiError
            try:
                answer = await self._send(method, url, route, token, json, query, file)
            except (NotSent, OutcomeUnknown) as exc:
                error = exc
                if self.on_attempt is not None:
                    self.on_attempt(method, route, getattr(exc, "kind", "not_sent"))
            else:
                if self.on_attempt is not None:
                    self.on_attempt(method, route, str(answer.status))
                if answer.status < 400:
                    self.governor.succeeded()
                    return answer
                message = self._scrub(server_message(answer.body, f"HTTP {answer.status}"))
                error = error_from_response(
                    answer.status, message, answer.headers, method=method, route=route
                )
            error.attempts = attempts
            elapsed = self._clock() - started
            status = getattr(error, "status", None)

            credentials = isinstance(self._auth, CredentialsAuth)
            if isinstance(error, Unauthorized) and auth and credentials and not renewed:
                renewed = True
                await self._renew(generation)
                continue
            if isinstance(error, CreditsExhausted):
                self.governor.mark_credits_exhausted(error)
                raise error
            if isinstance(error, RateLimited):
                wait = error.retry_after if error.retry_after is not None else UNREADABLE_WAIT_S
                self.governor.throttled(wait)
                throttles += 1
                # The wait is the server's, not a failure's: it spends no retry time.
                started += wait
                log = self._log.warning if wait >= LONG_THROTTLE_S else self._log.info
                log(
                    "api.throttled",
                    method=method,
                    route=route,
                    retry_after=round(wait, 3),
                    attempt=attempts,
                    throttles=throttles,
                )
                continue
            if isinstance(error, ServerError) and retry is Retry.UNSAFE:
                error = OutcomeUnknown(
                    error.message,
                    kind="server",
                    status=error.status,
                    method=method,
                    route=route,
                    attempts=attempts,
                )

            # A request that never left is safe to resend whatever the operation; anything
            # else only if the operation is SAFE.
            retryable = isinstance(error, NotSent) or (
                retry is Retry.SAFE and isinstance(error, ServerError | OutcomeUnknown)
            )
            if retryable:
                delay = next_delay(policy, retries, elapsed, self._rand())
                if delay is not None:
                    retries += 1
                    # A write answered 5xx may have been done before the failure, like one
                    # that timed out: a 409 on the resend is then most likely our own effect.
                    unknown_before = (
                        unknown_before
                        or isinstance(error, OutcomeUnknown)
                        or (isinstance(error, ServerError) and method != "GET")
                    )
                    self.governor.retried()
                    self._log.warning(
                        "api.retry",
                        method=method,
                        route=route,
                        status=status,
                        error=type(error).__name__,
                        attempt=attempts,
                        delay=round(delay, 3),
                    )
                    await anyio.sleep(delay)
                    continue
            if isinstance(error, Conflict) and unknown_before:
                error.after_unknown_outcome = True
            if isinstance(error, OutcomeUnknown | NotSent | ServerError):
                self._log.warning(
                    "api.gave_up",
                    method=method,
                    route=route,
                    status=status,
                    error=type(error).__name__,
                    attempts=attempts,
                )
            raise error

    async def _send(
        self,
        method: str,
        url: URL,
        route: str,
        token: str | None,
        json: Any,
        query: dict[str, str],
        file: VerifiedUpload | InlineAudioBody | None,
    ) -> _Answer:
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
    ) -> _Answer:
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
                return _Answer(response.status, response.headers, body)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise NotSent(
                _describe(exc), method=method, route=route
            ) from None  # the cause may hold request info with headers: not chained
        except TimeoutError as exc:
            raise OutcomeUnknown(
                f"no answer within {self.request_timeout:g} s ({_describe(exc)})",
                kind="timeout",
                method=method,
                route=route,
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise OutcomeUnknown(
                _describe(exc), kind="connection", method=method, route=route
            ) from None
        finally:
            if file is not None:
                file.close()  # a body abandoned mid-stream must not keep its file open

    # --- parsing ----------------------------------------------------------------------------

    def _parse(self, answer: _Answer, model: type[M], method: str, route: str) -> M:
        try:
            return model.model_validate_json(answer.body)
        except ValidationError as exc:
            raise InvalidResponse(_validation_summary(exc), method=method, route=route) from None

    def _parse_list(self, answer: _Answer, model: type[M], method: str, route: str) -> list[M]:
        try:
            return TypeAdapter(list[model]).validate_json(answer.body)  # type: ignore[valid-type]
        except ValidationError as exc:
            raise InvalidResponse(_validation_summary(exc), method=method, route=route) from None

    async def _get(self, route: str, model: type[M], **path: str) -> M:
        answer = await self._call("GET", route, path=path)
        return self._parse(answer, model, "GET", route)

    async def get_page(
        self, route: str, model: type[M], path: Mapping[str, str], params: Query
    ) -> Page[M]:
        """One page of a list; `params` holds page, page-size, sort, search, after, before."""
        answer = await self._call("GET", route, path=path, params=params)
        items = self._parse_list(answer, model, "GET", route)
        asked_page, asked_size = params.get("page"), params.get("page-size")
        return Page[model](  # type: ignore[valid-type]
            items=items,
            page_current=_header_int(answer.headers, "Page-Current")
            or (asked_page if isinstance(asked_page, int) else 1),
            page_total=_header_int(answer.headers, "Page-Total"),
            page_size=_header_int(answer.headers, "Page-Size")
            or (asked_size if isinstance(asked_size, int) else None),
            item_total=_header_int(answer.headers, "Item-Total"),
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
        """
        params: dict[str, Any] = {
            "page-size": page_size,
            "sort": sort,
            "search": search,
            "after": after,
            "before": before,
        }
        page, last = 1, None
        while last is None:
            result = await self.get_page(route, model, path, {**params, "page": page})
            for item in result.items:
                yield item
            if result.is_last or not result.items:
                return
            page = result.page_current + 1
            if read_ahead > 1:
                last = result.page_total  # known: fetch the rest in windows below
        while page <= last:
            numbers = range(page, min(page + read_ahead, last + 1))
            pages: dict[int, Page[M]] = {}

            async def fetch(number: int, into: dict[int, Page[M]] = pages) -> None:
                into[number] = await self.get_page(route, model, path, {**params, "page": number})

            async with anyio.create_task_group() as tg:
                for number in numbers:
                    tg.start_soon(fetch, number)
            for number in numbers:
                for item in pages[number].items:
                    yield item
            page = numbers[-1] + 1

    # --- operations: the caller ---------------------------------------------------------------

    async def get_user(self) -> User:
        """`GET /user`: the caller's handle and orgs (SAFE). Cached after the first call."""
        if self._user is None:
            self._user = await self._get("/user", User)
        return self._user

    # --- identities -------------------------------------------------------------------------

    async def create_identity(
        self, owner: str, space: str, handle: str, alias: str | None = None
    ) -> Identity:
        """Create an identity. SAFE: handle-keyed, a repeat answers `Conflict` (= exists)."""
        route = "/spaces/{owner}/{space}/identities"
        answer = await self._call(
            "POST",
            route,
            path={"owner": owner, "space": space},
            json=IdentityCreate(handle=handle, alias=alias).to_wire(),
        )
        return self._parse(answer, Identity, "POST", route)

    async def get_identity(self, owner: str, space: str, identity: str) -> Identity:
        """Read an identity (SAFE); `NotFound` if absent."""
        return await self._get(
            "/spaces/{owner}/{space}/identities/{identity}",
            Identity,
            owner=owner,
            space=space,
            identity=identity,
        )

    def list_identities(
        self,
        owner: str,
        space: str,
        *,
        search: str | None = None,
        sort: str | None = None,
        page_size: int = 50,
    ) -> AsyncIterator[Identity]:
        """Every identity of a space (sort `handle` or `createdAt`)."""
        return self.paginate(
            "/spaces/{owner}/{space}/identities",
            Identity,
            {"owner": owner, "space": space},
            search=search,
            sort=sort,
            page_size=page_size,
        )

    # --- audios -----------------------------------------------------------------------------

    async def create_audio(
        self,
        owner: str,
        space: str,
        *,
        alias: str | None = None,
        identity: str | None = None,
        file: VerifiedUpload | None = None,
    ) -> Audio:
        """Create an audio; the server picks the handle. Without `file` it awaits its file
        (`avaitingFile`); with one, the bytes go inline as base64, streamed inside the upload
        cap (`InlineAudioBody`): one request instead of create + raw upload.

        UNSAFE: a repeat would create a second audio. A timeout, reset or 5xx raises
        `OutcomeUnknown` without a retry: find the audio by its alias before creating again.
        A file changed since preflight raises `AudioUnreadable` before the body is complete.
        """
        route = "/spaces/{owner}/{space}/audios"
        fields = AudioCreate(alias=alias, identity=identity).to_wire()
        answer = await self._call(
            "POST",
            route,
            path={"owner": owner, "space": space},
            json=fields if file is None else None,
            file=InlineAudioBody(file, fields) if file is not None else None,
            retry=Retry.UNSAFE,
        )
        return self._parse(answer, Audio, "POST", route)

    async def upload_audio_file(
        self, owner: str, space: str, audio: str, file: VerifiedUpload | Path
    ) -> Audio:
        """Stream a file's raw bytes to an audio in `avaitingFile`, inside the upload cap.

        SAFE: an audio takes one file; a repeat after success answers `Conflict`
        (`after_unknown_outcome` set when an earlier attempt's outcome was unknown): GET the
        audio to confirm it is `available`. `PayloadTooLarge` is permanent.
        """
        route = "/spaces/{owner}/{space}/audios/{audio}/file"
        if isinstance(file, Path):  # no preflight measured it: measure it now
            file = await anyio.to_thread.run_sync(VerifiedUpload.from_path, file)
        answer = await self._call(
            "POST", route, path={"owner": owner, "space": space, "audio": audio}, file=file
        )
        return self._parse(answer, Audio, "POST", route)

    async def get_audio(self, owner: str, space: str, audio: str) -> Audio:
        """Read an audio (SAFE)."""
        return await self._get(
            "/spaces/{owner}/{space}/audios/{audio}", Audio, owner=owner, space=space, audio=audio
        )

    def list_audios(
        self,
        owner: str,
        space: str,
        *,
        search: str | None = None,
        sort: str | None = None,
        page_size: int = 50,
    ) -> AsyncIterator[Audio]:
        """Every audio of a space whose handle or alias contains `search`."""
        return self.paginate(
            "/spaces/{owner}/{space}/audios",
            Audio,
            {"owner": owner, "space": space},
            search=search,
            sort=sort,
            page_size=page_size,
        )

    async def find_audios_by_alias(self, owner: str, space: str, alias: str) -> list[Audio]:
        """Audios whose alias is exactly `alias` (search is a substring match), oldest first.

        This is how an audio create with an unknown outcome is reconciled.
        """
        found = [
            a
            async for a in self.list_audios(owner, space, search=alias, sort="createdAt")
            if a.alias == alias
        ]
        return found

    async def identify_audio(self, owner: str, space: str, audio: str, identity: str) -> Audio:
        """Link an audio to an identity (irreversible). SAFE: relinking the same is a no-op."""
        route = "/spaces/{owner}/{space}/audios/{audio}:identify"
        answer = await self._call(
            "POST",
            route,
            path={"owner": owner, "space": space, "audio": audio},
            json=AudioIdentify(identity=identity).to_wire(),
        )
        return self._parse(answer, Audio, "POST", route)

    # --- models -----------------------------------------------------------------------------

    async def list_models(self) -> list[Model]:
        """`GET /models` (emulator; the real service has no such list). SAFE."""
        answer = await self._call("GET", "/models")
        return self._parse_list(answer, Model, "GET", "/models")

    async def get_credits(self, owner: str) -> Credits:
        """`GET /owners/{owner}/credits` (ours; the emulator serves it, the vendor documents
        no credits read, so a real service may answer 404). SAFE."""
        return await self._get("/owners/{owner}/credits", Credits, owner=owner)

    # --- voiceprints ------------------------------------------------------------------------

    async def create_voiceprint(
        self,
        owner: str,
        space: str,
        identity: str,
        model: str,
        *,
        min_audios: int = 1,
        handle: str | None = None,
        alias: str | None = None,
    ) -> Voiceprint:
        """Create a voiceprint in `notComputable`; `model` is `"handle/version"`.

        SAFE with a `handle` (a repeat answers `Conflict`: GET it); UNSAFE without one, since
        the server would then assign a second handle.
        """
        route = "/spaces/{owner}/{space}/voiceprints"
        body = VoiceprintCreate(
            identity=identity, model=model, min_audios=min_audios, handle=handle, alias=alias
        ).to_wire()
        answer = await self._call(
            "POST",
            route,
            path={"owner": owner, "space": space},
            json=body,
            retry=Retry.SAFE if handle else Retry.UNSAFE,
        )
        return self._parse(answer, Voiceprint, "POST", route)

    async def get_voiceprint(
        self, owner: str, space: str, identity: str, voiceprint: str
    ) -> Voiceprint:
        """Read a voiceprint (SAFE)."""
        return await self._get(
            "/spaces/{owner}/{space}/voiceprints/{identity}/{voiceprint}",
            Voiceprint,
            owner=owner,
            space=space,
            identity=identity,
            voiceprint=voiceprint,
        )

    def list_voiceprints(
        self,
        owner: str,
        space: str,
        identity: str,
        *,
        sort: str | None = None,
        page_size: int = 50,
    ) -> AsyncIterator[Voiceprint]:
        """Every voiceprint of an identity."""
        return self.paginate(
            "/spaces/{owner}/{space}/identities/{identity}/voiceprints",
            Voiceprint,
            {"owner": owner, "space": space, "identity": identity},
            sort=sort,
            page_size=page_size,
        )

    def list_voiceprint_audios(
        self, owner: str, space: str, identity: str, voiceprint: str, *, page_size: int = 50
    ) -> AsyncIterator[Audio]:
        """Every audio added to a voiceprint."""
        return self.paginate(
            "/spaces/{owner}/{space}/voiceprints/{identity}/{voiceprint}/audios",
            Audio,
            {"owner": owner, "space": space, "identity": identity, "voiceprint": voiceprint},
            page_size=page_size,
        )

    async def add_audio_to_voiceprint(
        self, owner: str, space: str, identity: str, voiceprint: str, audio: str
    ) -> Voiceprint:
        """Add an available audio. SAFE: a repeat answers `Conflict` (already added).

        `Unprocessable` carries the model's reason the audio does not qualify.
        """
        route = "/spaces/{owner}/{space}/voiceprints/{identity}/{voiceprint}/audios/{audio}"
        path = {
            "owner": owner,
            "space": space,
            "identity": identity,
            "voiceprint": voiceprint,
            "audio": audio,
        }
        answer = await self._call("POST", route, path=path)
        return self._parse(answer, Voiceprint, "POST", route)

    async def remove_audio_from_voiceprint(
        self, owner: str, space: str, identity: str, voiceprint: str, audio: str
    ) -> Voiceprint:
        """Remove an added audio. SAFE: a repeat answers `NotFound` (no longer added)."""
        route = "/spaces/{owner}/{space}/voiceprints/{identity}/{voiceprint}/audios/{audio}"
        path = {
            "owner": owner,
            "space": space,
            "identity": identity,
            "voiceprint": voiceprint,
            "audio": audio,
        }
        answer = await self._call("DELETE", route, path=path)
        return self._parse(answer, Voiceprint, "DELETE", route)

    async def compute_voiceprint(
        self, owner: str, space: str, identity: str, voiceprint: str
    ) -> Voiceprint:
        """Compute a `computable` voiceprint: the billed, irreversible step.

        SAFE: computed once, a repeat answers `Conflict` (GET it). Refused locally with
        `CreditsExhausted(sent=False)` while the governor is in the credits-exhausted state.
        """
        route = "/spaces/{owner}/{space}/voiceprints/{identity}/{voiceprint}:compute"
        path = {"owner": owner, "space": space, "identity": identity, "voiceprint": voiceprint}
        answer = await self._call("POST", route, path=path, compute=True)
        return self._parse(answer, Voiceprint, "POST", route)

    # --- usage records ----------------------------------------------------------------------

    async def list_usage_records(
        self,
        owner: str,
        *,
        after: datetime | None = None,
        before: datetime | None = None,
        sort: str | None = None,
        page_size: int = 50,
        read_ahead: int = 1,
    ) -> AsyncIterator[UsageRecord]:
        """Voiceprint usage records of an owner: the caller's own (`/user/records/…`) when
        `owner` is the caller's handle, else the org's (`/orgs/{org}/records/…`).

        `read_ahead` > 1 wants `sort="computedAt"` (see `paginate`)."""
        me = await self.get_user()
        if owner == me.handle:
            route, path = "/user/records/voiceprint", {}
        else:
            route, path = "/orgs/{org}/records/voiceprint", {"org": owner}
        async for record in self.paginate(
            route,
            UsageRecord,
            path,
            after=after,
            before=before,
            sort=sort,
            page_size=page_size,
            read_ahead=read_ahead,
        ):
            yield record

    # --- verifications ----------------------------------------------------------------------

    async def create_verification(
        self,
        owner: str,
        space: str,
        *,
        audio: str,
        identity: str,
        voiceprint: str,
        alias: str | None = None,
    ) -> Verification:
        """Verify an audio against a computed voiceprint. UNSAFE (server-assigned handle)."""
        route = "/spaces/{owner}/{space}/verifications/identity"
        body = VerificationCreate(
            audio=audio, identity=identity, voiceprint=voiceprint, alias=alias
        ).to_wire()
        answer = await self._call(
            "POST", route, path={"owner": owner, "space": space}, json=body, retry=Retry.UNSAFE
        )
        return self._parse(answer, Verification, "POST", route)


def _describe(exc: BaseException) -> str:
    """A transport error as text without anything of the request but its kind."""
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def _validation_summary(exc: ValidationError) -> str:
    """Where and why a body failed validation, without the offending values (may be secret)."""
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False)[:5]
    ]
    return "unexpected response body: " + "; ".join(parts)
