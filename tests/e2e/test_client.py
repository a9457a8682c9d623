"""The API client against the real emulator over real sockets: every operation, auth, secrecy,
and the streaming upload."""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from tests.api_calls import (
    create_verification,
    identify_audio,
    remove_audio_from_voiceprint,
)
from tests.audiogen import write_audio, write_garbage
from tests.emulator_harness import DEMO_KEY, EmulatorHandle, emulator_process, running_emulator
from tests.fakeclock import FakeClock
from worker.api.auth import ApiKeyAuth, CredentialsAuth
from worker.api.backoff import RetryPolicy
from worker.api.client import ApiClient
from worker.api.errors import Conflict, Forbidden, NotFound, Unauthorized
from worker.api.governor import Governor
from worker.api.schemas import AudioState, Identity, VoiceprintState
from worker.config.settings import Settings

OWNER, SPACE = "demo", "main"
PASSWORD = "demo-password"


@pytest.fixture
async def emu() -> AsyncIterator[EmulatorHandle]:
    async with running_emulator() as handle:
        yield handle


def client_for(url: str, key: str = DEMO_KEY, **settings: object) -> ApiClient:
    return ApiClient.from_settings(
        Settings(api_url=url, api_key=key, rate_limit=1000, burst=50, **settings)  # type: ignore[arg-type]
    )


def alias_of(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


async def test_one_enrollment_end_to_end(emu: EmulatorHandle, tmp_path: Path) -> None:
    wav = write_audio(tmp_path / "bob.wav", voice_s=6.0, silence_s=1.0)
    alias = alias_of(wav)
    async with client_for(emu.base_url) as api:
        me = await api.get_user()
        assert me.handle == "demo" and "acme" in me.orgs

        bob = await api.create_identity(OWNER, SPACE, "bob", alias="Bob")
        assert bob.handle == "bob" and bob.created_at is not None
        with pytest.raises(Conflict, match=r"HTTP 409: identity bob already exists in demo/main"):
            await api.create_identity(OWNER, SPACE, "bob")
        assert (await api.get_identity(OWNER, SPACE, "bob")).alias == "Bob"

        audio = await api.create_audio(OWNER, SPACE, alias=alias, identity="bob")
        assert audio.state is AudioState.AVAITING_FILE
        audio = await api.upload_audio_file(OWNER, SPACE, audio.handle, wav)
        assert audio.state is AudioState.AVAILABLE
        assert audio.duration == pytest.approx(7.0, abs=0.01)
        assert audio.sample_rate == 16000
        with pytest.raises(
            Conflict, match=r"HTTP 409: audio \S+ already has a file"
        ):  # one file per audio
            await api.upload_audio_file(OWNER, SPACE, audio.handle, wav)
        assert [a.handle for a in await api.find_audios_by_alias(OWNER, SPACE, alias)] == [
            audio.handle
        ]
        assert (await api.get_audio(OWNER, SPACE, audio.handle)).identity is not None

        models = {m.name for m in await api.list_models()}
        assert {"phone/v1", "digital/v1"} <= models

        vp = await api.create_voiceprint(OWNER, SPACE, "bob", "phone/v1", handle="main")
        assert vp.state is VoiceprintState.NOT_COMPUTABLE and vp.model == "phone/v1"
        vp = await api.add_audio_to_voiceprint(OWNER, SPACE, "bob", "main", audio.handle)
        assert vp.state is VoiceprintState.COMPUTABLE
        with pytest.raises(
            Conflict, match=r"HTTP 409: audio \S+ is already added to voiceprint main"
        ):
            await api.add_audio_to_voiceprint(OWNER, SPACE, "bob", "main", audio.handle)
        vp = await api.compute_voiceprint(OWNER, SPACE, "bob", "main")
        assert vp.state is VoiceprintState.COMPUTED and vp.computed_at is not None
        with pytest.raises(Conflict, match=r"HTTP 409: voiceprint main is already computed"):
            await api.compute_voiceprint(OWNER, SPACE, "bob", "main")

        assert (await api.get_voiceprint(OWNER, SPACE, "bob", "main")).audios == 1
        listed = [v.handle async for v in api.list_identity_voiceprints(OWNER, SPACE, "bob")]
        assert listed == ["main"]
        added = [a.handle async for a in api.list_voiceprint_audios(OWNER, SPACE, "bob", "main")]
        assert added == [audio.handle]

        records = [r async for r in api.list_usage_records("demo")]
        assert [(r.voiceprint.handle, r.model) for r in records] == [("main", "phone/v1")]
        assert [r async for r in api.list_usage_records("acme")] == []

        check = await create_verification(
            api, OWNER, SPACE, audio=audio.handle, identity="bob", voiceprint="main"
        )
        assert check.handle


async def test_remove_and_identify(emu: EmulatorHandle, tmp_path: Path) -> None:
    wav = write_audio(tmp_path / "a.wav", voice_s=5.0)
    async with client_for(emu.base_url) as api:
        await api.create_identity(OWNER, SPACE, "carol")
        audio = await api.create_audio(OWNER, SPACE, alias="loose")
        await api.upload_audio_file(OWNER, SPACE, audio.handle, wav)
        linked = await identify_audio(api, OWNER, SPACE, audio.handle, "carol")
        assert linked.identity is not None and linked.identity.handle == "carol"
        await api.create_voiceprint(OWNER, SPACE, "carol", "phone/v1", handle="vp")
        await api.add_audio_to_voiceprint(OWNER, SPACE, "carol", "vp", audio.handle)
        vp = await remove_audio_from_voiceprint(api, OWNER, SPACE, "carol", "vp", audio.handle)
        assert vp.state is VoiceprintState.NOT_COMPUTABLE and vp.audios == 0


async def test_pagination_walks_every_page(emu: EmulatorHandle) -> None:
    async with client_for(emu.base_url) as api:
        handles = {f"p-{i:02d}" for i in range(7)}
        async with anyio.create_task_group() as tg:
            for handle in handles:
                tg.start_soon(api.create_identity, OWNER, SPACE, handle)
        seen = [i.handle async for i in api.list_identities(OWNER, SPACE, page_size=3)]
        assert sorted(seen) == sorted(handles)
        found = [i.handle async for i in api.list_identities(OWNER, SPACE, search="p-0")]
        assert sorted(found) == sorted(handles)
        stats = await emu.stats()
        lists = sum(n for r, n in stats["requests"]["by_route"].items() if r.startswith("GET"))
        assert lists == 4  # three pages of 3, 3, 1, then one search page: no extra request


async def test_pagination_read_ahead_fetches_pages_together_in_order_once() -> None:
    """The usage check's windowed paging: pages overlap on the wire, yet every item comes once,
    in list order, with one GET per page."""
    async with running_emulator(latency_ms=30) as emu, client_for(emu.base_url) as api:
        handles = [f"r-{i:02d}" for i in range(23)]
        async with anyio.create_task_group() as tg:
            for handle in handles:
                tg.start_soon(api.create_identity, OWNER, SPACE, handle)
        await emu.reset_stats()
        seen = [
            i.handle
            async for i in api.paginate(
                "/spaces/{owner}/{space}/identities",
                Identity,
                {"owner": OWNER, "space": SPACE},
                page_size=3,
                sort="handle",
                read_ahead=3,
            )
        ]
        assert seen == handles  # pages 2-4, 5-7, 8 fetched together, yielded in page order
        requests = (await emu.stats())["requests"]
        assert requests["total"] == 8  # 23 items / 3 per page: no page twice, none past the last
        assert requests["max_in_flight"] > 1  # one page after another would never overlap


async def test_permanent_errors_carry_the_server_message(emu: EmulatorHandle) -> None:
    async with client_for(emu.base_url) as api:
        with pytest.raises(
            NotFound, match=r"HTTP 404: identity nobody not found in demo/main"
        ) as info:
            await api.get_identity(OWNER, SPACE, "nobody")
        assert info.value.message and info.value.attempts == 1
        with pytest.raises(
            Forbidden,
            match=r"HTTP 403: access denied: other is neither you nor one of your organizations",
        ):
            await api.get_identity("other", "private", "x")


async def test_credentials_sign_in_and_renewal_after_expiry(tmp_path: Path) -> None:
    clock = FakeClock()  # the emulator's time: the token expires when the test says so
    async with running_emulator(token_ttl=0.5, clock=clock.utc) as emu:
        settings = Settings(
            api_url=emu.base_url,
            api_handle="demo",
            api_password=PASSWORD,  # type: ignore[arg-type]
        )
        with capture_logs() as logs:
            async with ApiClient.from_settings(settings) as api:
                assert (await api.get_user()).handle == "demo"
                first = api.auth.token
                clock.advance(0.7)  # the session token expires
                await api.create_identity(OWNER, SPACE, "after-expiry")
                assert api.auth.token is not None and api.auth.token != first
                assert api.governor.stats.renewals == 1
                tokens = [first.get_secret_value(), api.auth.token.get_secret_value()]  # type: ignore[union-attr]
        text = repr(logs) + repr(api)
        for secret in [PASSWORD, *tokens]:
            assert secret not in text
        assert any(entry["event"] == "api.sign_in_again" for entry in logs)


async def test_wrong_credentials_are_unauthorized(emu: EmulatorHandle) -> None:
    auth = CredentialsAuth("demo", SecretStr("wrong-password"))
    async with ApiClient(emu.base_url, auth) as api:
        with pytest.raises(
            Unauthorized, match=r"POST /auth/credentials: HTTP 401: invalid handle or password"
        ) as info:
            await api.get_user()
    assert "wrong-password" not in str(info.value) + repr(info.value)


async def test_the_key_never_reaches_logs_errors_or_reprs(emu: EmulatorHandle) -> None:
    secret_key = "not-a-real-key-SECRET"
    with capture_logs() as logs:
        async with ApiClient(
            emu.base_url,
            ApiKeyAuth(SecretStr(secret_key)),
            retry=RetryPolicy(max_retries=2, base=0.01),
        ) as api:
            with pytest.raises(Unauthorized, match=r"GET /user: HTTP 401: invalid token") as info:
                await api.get_user()
            text = str(info.value) + repr(info.value) + repr(api) + repr(api.auth.auth)
    # and a client that retries and logs a lot, with a valid key, against a faulty server
    async with running_emulator(fault_rate=0.5, seed=3) as faulty:
        with capture_logs() as more:
            async with client_for(faulty.base_url, max_retries=10) as api:
                for _ in range(10):
                    await api.list_models()
    assert any(entry["event"] == "api.retry" for entry in more)
    assert secret_key not in text + repr(logs)
    assert DEMO_KEY not in repr(more)


async def test_streaming_upload_does_not_hold_the_file_in_memory(tmp_path: Path) -> None:
    big = write_garbage(tmp_path / "big.wav", size=30 * 1024 * 1024)
    # The emulator runs in another process so that only the client's memory is traced.
    async with emulator_process() as emu:
        async with ApiClient(
            emu.base_url, ApiKeyAuth(SecretStr(DEMO_KEY)), governor=Governor(50)
        ) as api:
            audio = await api.create_audio(OWNER, SPACE, alias="big")
            tracemalloc.start()
            try:
                uploaded = await api.upload_audio_file(OWNER, SPACE, audio.handle, big)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        stats = await emu.stats()
    assert uploaded.state is AudioState.NOT_AVAILABLE  # garbage does not decode; it arrived
    assert stats["uploads"]["bytes_received"] == big.stat().st_size
    assert peak < 4 * 1024 * 1024, f"upload peak {peak / 1e6:.1f} MB for a 31 MB file"
