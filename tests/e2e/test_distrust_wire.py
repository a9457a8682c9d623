"""Issue 27, points 1, 2 and 8: the client against a middlebox that misbehaves on the wire
(tests/misbehaving.py in front of the emulator, over real sockets). Each test states its bound.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from tests.audiogen import write_audio
from tests.emulator_harness import DEMO_KEY, running_emulator
from tests.misbehaving import (
    gzip_bomb,
    gzipped,
    huge_body,
    misbehaving,
    redirect,
    trickle,
)
from worker.api.auth import ApiKeyAuth
from worker.api.backoff import RetryPolicy
from worker.api.client import ApiClient
from worker.api.errors import InvalidResponse, OutcomeUnknown
from worker.api.governor import Governor

OWNER, SPACE = "demo", "main"
CAP = 1024 * 1024  # the answer cap these tests give the client


def client(url: str, **kw: Any) -> ApiClient:
    options: dict[str, Any] = {
        "max_response_bytes": CAP,
        "retry": RetryPolicy(max_retries=3, max_time=60, base=0.01),
        **kw,
    }
    return ApiClient(url, ApiKeyAuth(SecretStr(DEMO_KEY)), governor=Governor(1000, 100), **options)


async def test_a_huge_answer_is_abandoned_at_the_cap_and_not_asked_again() -> None:
    # Bound: one request, the body read up to CAP (+ one chunk) of its 200 MB.
    async with running_emulator() as emu, misbehaving(emu.root_url) as proxy:
        proxy.on("GET", r"/models$", huge_body(200 * 1024 * 1024))
        async with client(proxy.base_url) as api:
            with pytest.raises(OutcomeUnknown, match=rf"answer larger than {CAP} bytes") as info:
                await api.list_models()
    assert info.value.kind == "too_large"
    assert proxy.seen.count(("GET", "/v1/models")) == 1


async def test_a_gzip_bomb_is_stopped_at_the_cap_after_decompression() -> None:
    # 64 MiB inflated from about 64 KiB on the wire: refused at CAP inflated bytes.
    async with running_emulator() as emu, misbehaving(emu.root_url) as proxy:
        proxy.on("GET", r"/models$", gzip_bomb(64 * 1024 * 1024))
        async with client(proxy.base_url) as api:
            with pytest.raises(OutcomeUnknown, match=rf"answer larger than {CAP} bytes"):
                await api.list_models()


async def test_a_gzip_answer_within_the_cap_is_read() -> None:
    async with running_emulator() as emu, misbehaving(emu.root_url) as proxy:
        rule = proxy.on("GET", r"/models$", gzipped())
        async with client(proxy.base_url) as api:
            models = await api.list_models()
    assert rule.used == 1 and "phone/v1" in {f"{m.handle}/{m.version}" for m in models}


async def test_an_answer_in_an_encoding_not_asked_for_is_refused_by_name() -> None:
    async def brotli(request: web.Request, forward: Any) -> web.StreamResponse:
        return web.Response(body=b"\x1b\x00", headers={"Content-Encoding": "br"})

    async with running_emulator() as emu, misbehaving(emu.root_url) as proxy:
        proxy.on("GET", r"/models$", brotli)
        async with client(proxy.base_url) as api:
            with pytest.raises(OutcomeUnknown, match="encoding the client did not ask for: 'br'"):
                await api.list_models()


async def test_a_trickling_answer_is_a_timeout_not_a_hang() -> None:
    # Bound: the request's deadline (request_timeout 0.5 s), per attempt, 1 + 3 attempts.
    async with running_emulator() as emu, misbehaving(emu.root_url) as proxy:
        proxy.on("GET", r"/models$", trickle(0.2))
        async with client(proxy.base_url, request_timeout=0.5) as api:
            with pytest.raises(OutcomeUnknown, match=r"no complete answer within 0.5 s") as info:
                await api.list_models()
    assert info.value.kind == "timeout" and info.value.attempts == 4


async def test_an_upload_whose_answer_trickles_ends_at_its_deadline(tmp_path: Path) -> None:
    # Bound: request_timeout 1 s + the file's size at 1 MiB/s, then an unknown outcome
    # (one attempt: this client does not retry).
    wav = write_audio(tmp_path / "a.wav", voice_s=5.0)
    async with running_emulator() as emu, misbehaving(emu.root_url) as proxy:
        proxy.on("POST", r"/file$", trickle(0.3))
        async with client(
            proxy.base_url,
            request_timeout=1.0,
            min_transfer_rate=1024 * 1024,
            retry=RetryPolicy(max_retries=0),
        ) as api:
            audio = await api.create_audio(OWNER, SPACE, alias="a")
            with pytest.raises(OutcomeUnknown, match=r"no complete answer within 1\.\d+ s"):
                await api.upload_audio_file(OWNER, SPACE, audio.handle, wav)


async def test_a_redirect_is_refused_by_name_and_the_key_never_goes_elsewhere() -> None:
    async with (
        running_emulator() as emu,
        running_emulator() as elsewhere,
        misbehaving(emu.root_url) as proxy,
    ):
        target = f"{elsewhere.base_url}/user?token=secret-in-query"
        proxy.on("GET", r"/user$", redirect(target, 307))
        async with client(proxy.base_url) as api:
            with pytest.raises(OutcomeUnknown) as info:
                await api.get_user()
    text = str(info.value)
    assert f"the API answered 307 (to {elsewhere.base_url}/user): check ENROLLER_API_URL" in text
    assert "secret-in-query" not in text and info.value.kind == "redirect"
    assert elsewhere.requests == []  # never followed: the key went nowhere else
    assert proxy.seen.count(("GET", "/v1/user")) == 1  # and never resent


# --- point 5: bounded lists ------------------------------------------------------------------


def endless_pages(template: dict[str, Any], headers: dict[str, str], *, repeat: bool) -> Any:
    """A list whose pages never end: each a full page of one audio (page size 1), distinct
    per page asked unless `repeat` (then always the first)."""

    async def act(request: web.Request, forward: Any) -> web.StreamResponse:
        number = 1 if repeat else int(request.query.get("page", "1"))
        body = [{**template, "handle": f"fake-{number}", "alias": f"fake {number}"}]
        return web.json_response(body, headers=headers)

    return act


async def list_all(api: ApiClient) -> list[Any]:
    return [a async for a in api.list_audios(OWNER, SPACE, page_size=1)]


async def template_audio(api: ApiClient) -> dict[str, Any]:
    audio = await api.create_audio(OWNER, SPACE, alias="template")
    return audio.model_dump(mode="json", by_alias=True)


async def test_a_page_that_repeats_ends_the_list_as_not_ending() -> None:
    # Bound: stops at the first repeat (page 2), although Page-Total says a million.
    async with (
        running_emulator() as emu,
        misbehaving(emu.root_url) as proxy,
        client(proxy.base_url) as api,
    ):
        template = await template_audio(api)
        proxy.on(
            "GET", r"/audios$", endless_pages(template, {"Page-Total": "1000000"}, repeat=True)
        )
        with pytest.raises(
            InvalidResponse, match=r"did not end after 2 pages \(page 2 repeats page 1\)"
        ):
            await list_all(api)
    assert proxy.seen.count(("GET", "/v1/spaces/demo/main/audios")) == 2


async def test_a_lying_page_total_is_bounded_by_the_item_total() -> None:
    # Page-Total a million, Item-Total 3, page size 1: 3 pages justified, no 4th asked.
    headers = {"Page-Total": "1000000", "Item-Total": "3", "Page-Size": "1"}
    async with (
        running_emulator() as emu,
        misbehaving(emu.root_url) as proxy,
        client(proxy.base_url) as api,
    ):
        template = await template_audio(api)
        proxy.on("GET", r"/audios$", endless_pages(template, headers, repeat=False))
        with pytest.raises(
            InvalidResponse, match=r"did not end after 3 pages \(the headers justify 3\)"
        ):
            await list_all(api)
    assert proxy.seen.count(("GET", "/v1/spaces/demo/main/audios")) == 3


async def test_a_list_without_headers_stops_at_the_absolute_cap() -> None:
    # No headers, every page full and new: ENROLLER_MAX_LIST_PAGES (20 here) pages, no more.
    async with (
        running_emulator() as emu,
        misbehaving(emu.root_url) as proxy,
        client(proxy.base_url, max_list_pages=20) as api,
    ):
        template = await template_audio(api)
        proxy.on("GET", r"/audios$", endless_pages(template, {}, repeat=False))
        with pytest.raises(InvalidResponse, match=r"did not end after 20 pages"):
            await list_all(api)
    assert proxy.seen.count(("GET", "/v1/spaces/demo/main/audios")) == 20


async def test_a_true_list_is_read_whole_through_the_proxy() -> None:
    async with (
        running_emulator() as emu,
        misbehaving(emu.root_url) as proxy,
        client(proxy.base_url) as api,
    ):
        for n in range(3):
            await api.create_audio(OWNER, SPACE, alias=f"a{n}")
        assert len(await list_all(api)) == 3


# --- point 6: answers checked against the question --------------------------------------------


async def test_a_read_answered_about_another_identity_is_refused() -> None:
    async def bobs(request: web.Request, forward: Any) -> web.StreamResponse:
        return web.json_response({"handle": "bob", "alias": None})

    async with (
        running_emulator() as emu,
        misbehaving(emu.root_url) as proxy,
        client(proxy.base_url) as api,
    ):
        await api.create_identity(OWNER, SPACE, "ann")
        proxy.on("GET", r"/identities/ann$", bobs)
        with pytest.raises(InvalidResponse, match=r"handle: asked 'ann', answered 'bob'"):
            await api.get_identity(OWNER, SPACE, "ann")


async def test_usage_records_of_another_owner_are_refused() -> None:
    record = {
        "voiceprint": {"handle": "vp", "identity": "ann"},
        "owner": {"type": "user", "handle": "other"},
    }

    async def others(request: web.Request, forward: Any) -> web.StreamResponse:
        return web.json_response([record])

    async with (
        running_emulator() as emu,
        misbehaving(emu.root_url) as proxy,
        client(proxy.base_url) as api,
    ):
        proxy.on("GET", r"/records/voiceprint$", others)
        with pytest.raises(InvalidResponse, match=r"owner: asked 'demo', answered 'other'"):
            [r async for r in api.list_usage_records(OWNER)]
