"""`ApiClient`: typed async methods over one transport, inside the shared governor.

Owns: putting the client together by composition, its transport's lifecycle and its settings;
each concern is one object from a module beside it: transport.py (the `Transport` seam, one
attempt on the wire; `AiohttpTransport` by default), loop.py (the request loop and parsing,
holding auth, transport, governor and the send gate), retry_rules.py (each reason to retry or
stop, pure), auth.py (key, credentials, token), and the resource groups as the contract groups
them, each holding the loop: identities.py, audios.py, voiceprints.py (with models),
records.py (usage records, credits). Must never hold or log a secret in clear outside the
Authorization header it sends: logs and errors name the route *template*, never the URL's
query, headers, key, password or token.

Retry rules, per operation (each method's docstring says which applies):

- SAFE: repeating the request cannot do anything twice — reads, and writes the server answers
  with 409 when they were already done (handle-keyed creates, add-audio, the file upload).
  Retried on 5xx, timeouts and connection errors, with full-jitter backoff bounded by
  `RetryPolicy`. A 409 on a retry after an unknown outcome is flagged
  `Conflict.after_unknown_outcome`: most likely the earlier attempt's own effect.
- UNSAFE: the server assigns the handle, so a repeat would create a second resource (audio
  create, verification, a voiceprint created without a handle); or a repeat of a request that
  was done answers 404 as if it had failed (a voiceprint's rename or delete). Retried only when
  the request certainly did not take effect (`NotSent`, 429); a timeout, reset or 5xx raises
  `OutcomeUnknown` at once so that the caller reconciles (e.g. searches the `sha256:` alias,
  or reads the voiceprint under its old and new handles). Compute is sent the same way
  although a repeat would answer 409: it is the billed call, and only a read of the voiceprint
  says whether it took effect (the engine reads, then decides).
- Never resent, SAFE or not: an answer that came but cannot be used (larger than
  `max_response_bytes`, in an encoding not asked for, a redirect, about another resource).
- Every call: 429 + Retry-After (seconds or an HTTP-date) pauses the whole governor until
  then and the call is resent: throttling uses neither `max_retries` nor `max_time`, but a
  call throttled `MAX_THROTTLES_PER_CALL` times gives up, a Retry-After above
  `max_retry_after` is declared as a pause (pause.py: `run --once` checkpoints and exits 75),
  and an unreadable one is a retry like any other, counted against `max_retries`. A 429
  without Retry-After is credits whatever its wording: it
  marks the governor and is raised, and computes (and any route so refused) are refused
  locally from then on, until `credits_recheck`. A 401 in credentials mode signs in again
  once and resends.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

from worker.api.audios import AudiosApi
from worker.api.auth import ApiKeyAuth, Auth, Authenticator, CredentialsAuth
from worker.api.backoff import RetryPolicy
from worker.api.governor import Governor, RequestMeter, SendGate
from worker.api.identities import IdentitiesApi
from worker.api.loop import AttemptHook, RequestLoop
from worker.api.pause import ServerPause
from worker.api.records import RecordsApi
from worker.api.transport import AiohttpTransport, Transport
from worker.api.voiceprints import VoiceprintsApi
from worker.config.settings import Settings, setting_default


class ApiClient:
    """The worker's only door to the API. Use as `async with ApiClient.from_settings(s) as api:`.

    Its seams are constructor arguments: `transport` (one attempt on the wire; by default an
    `AiohttpTransport` whose connection pool is sized to the governor's in-flight cap, so that a
    request holding an in-flight place never waits for a connection), `governor` (several
    clients may share one: it is the process-wide budget). `gated(send_gate, meter)` is a job's
    view: the same client behind the job's send gate (awaited before each request leaves),
    counting the job's requests.
    """

    def __init__(
        self,
        base_url: str,
        auth: Auth,
        *,
        governor: Governor | None = None,
        transport: Transport | None = None,
        request_timeout: float = setting_default("request_timeout"),
        max_response_bytes: int = setting_default("max_response_bytes"),
        min_transfer_rate: float = setting_default("min_transfer_rate"),
        max_list_pages: int = setting_default("max_list_pages"),
        max_retry_after: float = setting_default("max_retry_after"),
        retry: RetryPolicy | None = None,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.governor = (
            governor if governor is not None else Governor(setting_default("rate_limit"))
        )
        self.transport: Transport = (
            transport
            if transport is not None
            else AiohttpTransport(
                request_timeout=request_timeout,
                max_connections=self.governor.max_in_flight,
                max_response_bytes=max_response_bytes,
                min_transfer_rate=min_transfer_rate,
            )
        )
        self._compose(
            RequestLoop(
                self.base_url,
                Authenticator(auth, self.governor),
                self.transport,
                self.governor,
                retry=retry if retry is not None else RetryPolicy(),
                rand=rand,
                clock=clock,
                max_pages=max_list_pages,
                pause=ServerPause(max_retry_after),
            )
        )

    def _compose(self, loop: RequestLoop) -> None:
        """The public methods, each from the resource group that owns it, over `loop`."""
        self.requests = loop
        self.auth = loop.auth
        self.outage = loop.outage  # is the API reachable (worker.api.outage)
        self.pause = loop.pause  # a long wait the API asked for (pause.py)
        self.get_user = loop.user
        self.get_page = loop.get_page
        self.paginate = loop.paginate
        identities = IdentitiesApi(loop)
        self.create_identity = identities.create_identity
        self.get_identity = identities.get_identity
        self.list_identities = identities.list_identities
        audios = AudiosApi(loop)
        self.create_audio = audios.create_audio
        self.upload_audio_file = audios.upload_audio_file
        self.get_audio = audios.get_audio
        self.list_audios = audios.list_audios
        self.find_audios_by_alias = audios.find_audios_by_alias
        voiceprints = VoiceprintsApi(loop)
        self.list_models = voiceprints.list_models
        self.create_voiceprint = voiceprints.create_voiceprint
        self.get_voiceprint = voiceprints.get_voiceprint
        self.list_identity_voiceprints = voiceprints.list_identity_voiceprints
        self.rename_voiceprint = voiceprints.rename_voiceprint
        self.delete_voiceprint = voiceprints.delete_voiceprint
        self.list_voiceprint_audios = voiceprints.list_voiceprint_audios
        self.add_audio_to_voiceprint = voiceprints.add_audio_to_voiceprint
        self.compute_voiceprint = voiceprints.compute_voiceprint
        records = RecordsApi(loop)
        self.get_credits = records.get_credits
        self.list_usage_records = records.list_usage_records
        self.usage_records_page = records.usage_records_page

    def gated(self, send_gate: SendGate, meter: RequestMeter | None = None) -> ApiClient:
        """This client (same transport, token, governor and hook) behind `send_gate`.

        A job's view: every request it sends first awaits the job's lease guard, and is
        counted in the job's `meter`.
        """
        view = copy.copy(self)
        view._compose(self.requests.gated(send_gate, meter))
        return view

    @property
    def meter(self) -> RequestMeter | None:
        """The requests this view has sent (a job's view only; None for the process's client)."""
        return self.requests.meter

    @property
    def on_attempt(self) -> AttemptHook | None:
        """Metrics hook: (method, route template, status or failure kind) of every attempt."""
        return self.requests.on_attempt

    @on_attempt.setter
    def on_attempt(self, hook: AttemptHook | None) -> None:
        self.requests.on_attempt = hook

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
            max_response_bytes=settings.max_response_bytes,
            min_transfer_rate=settings.min_transfer_rate,
            max_list_pages=settings.max_list_pages,
            max_retry_after=settings.max_retry_after,
            retry=RetryPolicy(max_retries=settings.max_retries, max_time=settings.retry_max_time),
        )

    def __repr__(self) -> str:
        auth = self.auth.auth
        mode = "api-key" if isinstance(auth, ApiKeyAuth) else f"user {auth.handle}"
        return f"ApiClient({self.base_url!r}, auth={mode})"

    # --- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.transport.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.transport.aclose()
