"""The client's decision loop, with its network seam (`ApiClient(transport=...)`) a script.

Retries, the idempotency rules, 429 handling, sign-in renewal, pagination and secrecy are
logic; here they are tested without sockets and without sleeping (jitter drawn as 0). The same
behaviours are tested against the real emulator in tests/e2e/test_client*.py.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from worker.api import errors as e
from worker.api.auth import ApiKeyAuth, CredentialsAuth
from worker.api.backoff import RetryPolicy
from worker.api.client import ApiClient
from worker.api.governor import Governor
from worker.api.retry_rules import MAX_THROTTLES_PER_CALL
from worker.api.transport import Answer as _Answer
from worker.api.transport import Request, route_url
from worker.config.settings import Settings

KEY = "key-SECRET-0123456789"
PASSWORD = "pass-SECRET-word"
OWNER, SPACE = "acme", "main"

AUDIO = {"handle": "a-1", "state": "avaitingFile", "alias": "sha256:ab"}
VP = {"handle": "vp", "state": "computed", "model": "phone/v1", "identity": {"handle": "bob"}}


def ok(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> _Answer:
    return _Answer(status, headers or {}, json.dumps(body).encode())


def fail(status: int, message: str, headers: dict[str, str] | None = None) -> _Answer:
    return _Answer(status, headers or {}, json.dumps({"message": message}).encode())


Step = _Answer | BaseException | Callable[[dict[str, Any]], _Answer]


class Script:
    """A transport: answers attempts in order and records what was sent."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.sent: list[dict[str, Any]] = []

    async def open(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def send(self, request: Request) -> _Answer:
        call = {
            "method": request.method,
            "url": str(request.url),
            "route": request.route,
            "token": request.token,
            "json": request.json,
            "query": dict(request.query),
        }
        self.sent.append(call)
        step = self.steps.pop(0)
        if isinstance(step, BaseException):
            raise step
        if callable(step):
            return step(call)
        return step


def timeout() -> e.OutcomeUnknown:
    return e.OutcomeUnknown("TimeoutError", kind="timeout", method="POST", route="/r")


def reset() -> e.OutcomeUnknown:
    return e.OutcomeUnknown("ServerDisconnectedError", kind="connection")


def make(
    script: Script,
    auth: ApiKeyAuth | CredentialsAuth | None = None,
    governor: Governor | None = None,
    **policy: Any,
) -> ApiClient:
    return ApiClient(
        "http://api.test/v1",
        auth or ApiKeyAuth(SecretStr(KEY)),
        governor=governor or Governor(10_000, 100),
        transport=script,
        retry=RetryPolicy(**{"max_retries": 4, "max_time": 60, **policy}),
        rand=lambda: 0.0,
    )


async def test_safe_call_is_retried_through_5xx_timeouts_and_resets() -> None:
    script = Script(fail(503, "busy"), timeout(), reset(), ok({"handle": "bob"}))
    client = make(script)
    with capture_logs() as logs:
        identity = await client.get_identity(OWNER, SPACE, "bob")
    assert identity.handle == "bob"
    assert len(script.sent) == 4 and client.governor.stats.retries == 3
    retries = [entry for entry in logs if entry["event"] == "api.retry"]
    assert [r["attempt"] for r in retries] == [1, 2, 3]
    assert retries[0]["route"] == "/spaces/{owner}/{space}/identities/{identity}"
    assert retries[0]["status"] == 503
    assert script.sent[0]["url"] == "http://api.test/v1/spaces/acme/main/identities/bob"


async def test_retries_are_bounded_and_the_last_error_is_raised() -> None:
    script = Script(*[fail(500, "boom")] * 5)
    with pytest.raises(e.ServerError, match=r"HTTP 500: boom") as info:
        await make(script).get_audio(OWNER, SPACE, "a-1")
    assert info.value.attempts == 5 and len(script.sent) == 5  # 1 + max_retries


async def test_retries_are_bounded_by_time() -> None:
    script = Script(*[fail(500, "boom")] * 5)
    client = make(script, max_time=0)
    with pytest.raises(e.ServerError, match=r"HTTP 500: boom"):
        await client.get_audio(OWNER, SPACE, "a-1")
    assert len(script.sent) == 1


async def test_audio_create_with_unknown_outcome_is_not_retried() -> None:
    script = Script(timeout(), ok(AUDIO, 201))
    with pytest.raises(e.OutcomeUnknown, match=r"outcome unknown \(timeout\)") as info:
        await make(script).create_audio(OWNER, SPACE, alias="sha256:ab")
    assert info.value.kind == "timeout" and info.value.attempts == 1
    assert len(script.sent) == 1


async def test_audio_create_answered_5xx_is_outcome_unknown_too() -> None:
    script = Script(fail(500, "db write failed"), ok(AUDIO, 201))
    with pytest.raises(
        e.OutcomeUnknown, match=r"outcome unknown \(server HTTP 500\): db write failed"
    ) as info:
        await make(script).create_audio(OWNER, SPACE, alias="sha256:ab")
    assert (info.value.kind, info.value.status) == ("server", 500)
    assert len(script.sent) == 1


async def test_audio_create_not_sent_is_retried() -> None:
    script = Script(e.NotSent("ClientConnectorError: refused"), ok(AUDIO, 201))
    audio = await make(script).create_audio(OWNER, SPACE, alias="sha256:ab", identity="bob")
    assert audio.handle == "a-1" and len(script.sent) == 2
    assert script.sent[0]["json"] == {"alias": "sha256:ab", "identity": "bob"}


async def test_voiceprint_create_is_safe_only_with_a_handle() -> None:
    script = Script(reset(), ok(VP, 201))
    await make(script).create_voiceprint(OWNER, SPACE, "bob", "phone/v1", handle="vp")
    assert len(script.sent) == 2
    script = Script(reset(), ok(VP, 201))
    with pytest.raises(e.OutcomeUnknown, match=r"outcome unknown \(connection\)"):
        await make(script).create_voiceprint(OWNER, SPACE, "bob", "phone/v1")
    assert len(script.sent) == 1


async def test_conflict_after_an_unknown_outcome_is_flagged() -> None:
    script = Script(timeout(), fail(409, "already added"))
    with pytest.raises(e.Conflict, match=r"HTTP 409: already added") as info:
        await make(script).add_audio_to_voiceprint(OWNER, SPACE, "bob", "vp", "a-1")
    assert info.value.after_unknown_outcome
    script = Script(fail(409, "already added"))
    with pytest.raises(e.Conflict, match=r"HTTP 409: already added") as info:
        await make(script).add_audio_to_voiceprint(OWNER, SPACE, "bob", "vp", "a-1")
    assert not info.value.after_unknown_outcome


async def test_a_compute_whose_answer_is_lost_is_not_resent_blind() -> None:
    # Issue 27 point 7: only a read says whether the billed call took effect.
    script = Script(timeout(), fail(409, "voiceprint already computed"))
    with pytest.raises(e.OutcomeUnknown, match=r"timeout"):
        await make(script).compute_voiceprint(OWNER, SPACE, "bob", "vp")
    assert len(script.sent) == 1


async def test_permanent_errors_are_not_retried() -> None:
    for status, cls in [(400, e.BadRequest), (403, e.Forbidden), (422, e.Unprocessable)]:
        script = Script(fail(status, "no"))
        with pytest.raises(cls, match=rf"HTTP {status}: no"):
            await make(script).add_audio_to_voiceprint(OWNER, SPACE, "bob", "vp", "a-1")
        assert len(script.sent) == 1


async def test_rate_limited_pauses_the_governor_and_resends_without_using_a_retry() -> None:
    script = Script(fail(429, "rate", {"Retry-After": "0"}), ok(AUDIO, 201))
    client = make(script)
    audio = await client.create_audio(OWNER, SPACE)  # even an UNSAFE call: it was refused
    assert audio.handle == "a-1" and len(script.sent) == 2
    assert client.governor.stats.throttled == 1 and client.governor.stats.retries == 0


async def test_throttling_is_waited_out_and_never_a_retry_up_to_its_own_bound() -> None:
    # 49 throttles, each longer than the whole retry time: still no failure, no retry used.
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    n = MAX_THROTTLES_PER_CALL - 1
    script = Script(*[fail(429, "rate", {"Retry-After": "90"})] * n, ok({"handle": "me"}))
    client = make(script, governor=Governor(10_000, 100, sleep=sleep), max_time=60, max_retries=0)
    assert (await client.get_user()).handle == "me"
    assert len(script.sent) == n + 1 and client.governor.stats.throttled == n
    assert client.governor.stats.retries == 0
    # Issue 27 point 4: a call throttled without end gives up at the bound, loudly.
    script = Script(*[fail(429, "rate", {"Retry-After": "1"})] * (MAX_THROTTLES_PER_CALL + 5))
    client = make(script, governor=Governor(10_000, 100, sleep=sleep))
    with pytest.raises(e.RateLimited):
        await client.get_user()
    assert len(script.sent) == MAX_THROTTLES_PER_CALL + 1


async def test_an_unreadable_retry_after_spends_the_retry_budget() -> None:
    script = Script(*[fail(429, "rate", {"Retry-After": "soon"})] * 10)
    client = make(script, max_retries=3)
    with pytest.raises(e.RateLimited):
        await client.get_user()
    assert len(script.sent) == 4 and client.governor.stats.retries == 3


async def test_a_retry_after_above_the_bound_is_declared_once_as_a_pause() -> None:
    async def sleep(seconds: float) -> None:
        pass

    told: list[object] = []
    script = Script(*[fail(429, "rate", {"Retry-After": "999999"})] * 3, ok({"handle": "me"}))
    client = make(script, governor=Governor(10_000, 100, sleep=sleep))
    client.pause.listen(told.append)
    assert (await client.get_user()).handle == "me"  # the service decides; the call waits
    assert len(told) == 1 and client.pause.active() >= told[0]  # one pause, maybe moved later


async def test_retry_after_as_an_http_date_pauses_until_then() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)  # the governor's wait for the resend's slot, not slept

    script = Script(fail(429, "rate", {"Retry-After": "Thu, 01 Jan 2026 00:00:03 GMT"}), ok(VP))
    client = make(script, governor=Governor(10_000, 100, sleep=sleep))
    await client.get_voiceprint(OWNER, SPACE, "bob", "vp")
    assert client.governor.stats.throttled == 1
    assert max(waits, default=0.0) < 0.01  # that date is long past: go at once
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    script = Script(fail(429, "rate", {"Retry-After": future}), ok(VP))
    client = make(script, governor=Governor(10_000, 100, sleep=sleep))
    await client.get_voiceprint(OWNER, SPACE, "bob", "vp")
    assert client.governor.stats.throttled == 1 and 25 < max(waits) <= 30


@pytest.mark.parametrize("message", ["Not enough credits", "quota exceeded", "slow down"])
async def test_a_429_without_retry_after_is_credits_on_any_call_and_is_not_resent(
    message: str,
) -> None:
    script = Script(fail(429, message))
    client = make(script)
    with pytest.raises(e.CreditsExhausted, match=message) as info:
        await client.create_audio(OWNER, SPACE, alias="sha256:ab")
    assert info.value.sent and len(script.sent) == 1
    assert client.governor.credits_exhausted
    # That route is billed now: refused locally, like every compute, until the recheck.
    with pytest.raises(e.CreditsExhausted, match="paused") as info:
        await client.create_audio(OWNER, SPACE, alias="sha256:cd")
    assert not info.value.sent
    with pytest.raises(e.CreditsExhausted, match="paused"):
        await client.compute_voiceprint(OWNER, SPACE, "bob", "vp")
    assert len(script.sent) == 1
    # Reads are not billed: they still go out.
    script.steps.append(ok({"handle": "bob"}))
    assert (await client.get_identity(OWNER, SPACE, "bob")).handle == "bob"


async def test_credits_exhausted_is_raised_once_then_computes_are_refused_locally() -> None:
    script = Script(fail(429, "Not enough credits"))
    client = make(script)
    with pytest.raises(e.CreditsExhausted, match=r"HTTP 429: Not enough credits") as info:
        await client.compute_voiceprint(OWNER, SPACE, "bob", "vp")
    assert info.value.sent
    with pytest.raises(e.CreditsExhausted, match=r"Not enough credits") as info:
        await client.compute_voiceprint(OWNER, SPACE, "bob", "vp2")
    assert not info.value.sent and len(script.sent) == 1


def signed_in(token: str) -> Callable[[dict[str, Any]], _Answer]:
    def answer(call: dict[str, Any]) -> _Answer:
        assert call["route"] == "/auth/credentials" and call["token"] is None
        assert call["json"] == {"handle": "me", "password": PASSWORD}
        return ok({"token": token, "issuedAt": None, "expiresAt": None})

    return answer


CREDS = CredentialsAuth("me", SecretStr(PASSWORD))


async def test_credentials_sign_in_on_first_use_and_renew_once_on_401() -> None:
    script = Script(
        signed_in("tok-SECRET-1"),
        ok({"handle": "me"}),
        fail(401, "token expired"),
        signed_in("tok-SECRET-2"),
        ok({"handle": "bob"}),
    )
    client = make(script, auth=CREDS)
    await client.get_user()
    with capture_logs() as logs:
        await client.get_identity(OWNER, SPACE, "bob")
    assert [c["token"] for c in script.sent] == [
        None,
        "tok-SECRET-1",
        "tok-SECRET-1",
        None,
        "tok-SECRET-2",
    ]
    assert client.governor.stats.renewals == 1
    assert "SECRET" not in repr(logs)


async def test_a_second_401_in_one_call_is_raised() -> None:
    script = Script(
        signed_in("tok-SECRET-1"), fail(401, "no"), signed_in("tok-SECRET-2"), fail(401, "no")
    )
    with pytest.raises(e.Unauthorized, match=r"GET /user: HTTP 401: no"):
        await make(script, auth=CREDS).get_user()
    assert len(script.sent) == 4


async def test_api_key_401_is_raised_at_once() -> None:
    script = Script(fail(401, "invalid token"))
    with pytest.raises(e.Unauthorized, match=r"GET /user: HTTP 401: invalid token"):
        await make(script).get_user()
    assert script.sent[0]["token"] == KEY


async def test_secrets_echoed_by_the_server_never_reach_errors_or_logs() -> None:
    script = Script(*[fail(500, f"bad header Bearer {KEY}")] * 5)
    with (
        capture_logs() as logs,
        pytest.raises(e.ServerError, match=r"GET /user: HTTP 500: bad header Bearer \*{8}") as info,
    ):
        await make(script).get_user()
    for text in (str(info.value), repr(info.value), info.value.message, repr(logs)):
        assert KEY not in text


async def test_pagination_follows_page_headers() -> None:
    def page(n: int, total: int) -> Callable[[dict[str, Any]], _Answer]:
        def answer(call: dict[str, Any]) -> _Answer:
            assert call["query"]["page"] == str(n) and call["query"]["search"] == "sha256:"
            items = [{**AUDIO, "handle": f"a-{n}-{i}"} for i in range(2)]
            return ok(items, headers={"Page-Total": str(total), "Page-Current": str(n)})

        return answer

    script = Script(page(1, 3), page(2, 3), page(3, 3))
    found = [a.handle async for a in make(script).list_audios(OWNER, SPACE, search="sha256:")]
    assert found == ["a-1-0", "a-1-1", "a-2-0", "a-2-1", "a-3-0", "a-3-1"]


async def test_find_audios_by_alias_keeps_exact_matches() -> None:
    items = [
        {**AUDIO, "handle": "a", "alias": "sha256:ab"},
        {**AUDIO, "handle": "b", "alias": "sha256:abc"},
    ]
    script = Script(ok(items, headers={"Page-Total": "1", "Page-Current": "1"}))
    found = await make(script).find_audios_by_alias(OWNER, SPACE, "sha256:ab")
    assert [a.handle for a in found] == ["a"]
    assert script.sent[0]["query"]["sort"] == "createdAt"


async def test_usage_records_path_depends_on_who_owns() -> None:
    empty = ok([], headers={"Page-Total": "1", "Page-Current": "1"})
    script = Script(ok({"handle": "me", "orgs": ["acme"]}), empty, empty)
    client = make(script)
    assert [r async for r in client.list_usage_records("me")] == []
    assert [r async for r in client.list_usage_records("acme")] == []
    assert [c["route"] for c in script.sent] == [
        "/user",
        "/user/records/voiceprint",
        "/orgs/{org}/records/voiceprint",
    ]


async def test_invalid_success_body_is_invalid_response_without_values() -> None:
    script = Script(ok({"token": 12345678}))
    with pytest.raises(
        e.InvalidResponse,
        match=r"unexpected response body: token: Input should be a valid string",
    ) as info:
        await make(script, auth=CREDS).get_user()
    assert "12345678" not in str(info.value)


def test_compute_url_keeps_its_colon_and_handles_are_quoted() -> None:
    url = route_url(
        "http://api.test/v1",
        "/v/{identity}/{voiceprint}:compute",
        {"identity": "a b", "voiceprint": "x"},
    )
    assert str(url) == "http://api.test/v1/v/a%20b/x:compute"


def test_from_settings_picks_the_auth_and_never_shows_it() -> None:
    client = ApiClient.from_settings(Settings(api_key=KEY))  # type: ignore[arg-type]
    assert KEY not in repr(client) and KEY not in repr(client.auth.auth)
    client = ApiClient.from_settings(
        Settings(api_handle="me", api_password=PASSWORD, max_retries=2)  # type: ignore[arg-type]
    )
    assert PASSWORD not in repr(client) and client.requests.retry.max_retries == 2
    with pytest.raises(ValueError, match="ENROLLER_API_KEY"):
        ApiClient.from_settings(Settings())


async def test_using_a_closed_client_says_so() -> None:
    client = ApiClient("http://api.test/v1", ApiKeyAuth(SecretStr(KEY)))
    with pytest.raises(RuntimeError, match="not open"):
        await client.get_user()
