"""`ApiClient`: typed async methods over one aiohttp session, inside the shared governor.

Owns: putting the client together, its session's lifecycle and its settings; each concern is
one module beside it: transport.py (one attempt on the wire), loop.py (the request loop and
parsing), retry_rules.py (each reason to retry or stop, pure), auth.py (key, credentials,
token), and the resource methods as the contract groups them: identities.py, audios.py,
voiceprints.py (with models and verifications), records.py (usage records, credits). Must
never hold or log a secret in clear outside the Authorization header it sends: logs and errors
name the route *template*, never the URL's query, headers, key, password or token.

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

import random
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

import aiohttp
import anyio
import structlog
from pydantic import SecretStr

from worker.api.audios import AudiosApi
from worker.api.auth import ApiKeyAuth, Auth, CredentialsAuth
from worker.api.backoff import RetryPolicy
from worker.api.governor import Governor
from worker.api.identities import IdentitiesApi
from worker.api.records import RecordsApi
from worker.api.schemas import User
from worker.api.voiceprints import VoiceprintsApi
from worker.base.log import REDACTOR
from worker.config.settings import Settings

USER_AGENT = "voiceprint-enroller/0.1"


class ApiClient(IdentitiesApi, AudiosApi, VoiceprintsApi, RecordsApi):
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
