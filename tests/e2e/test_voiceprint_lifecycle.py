"""A voiceprint renamed and deleted through the worker's client, against the emulator over a
real socket: what changes on the server, what stays, what a service without either route
answers (405 → `MethodNotAllowed`), that neither is repeated after an unknown outcome, the
two lists the swap of issue 28 reads, and persistence across a restart and a kill -9."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import SecretStr

from tests.audiogen import write_audio
from tests.emulator_harness import DEMO_KEY, EmulatorHandle, emulator_process, running_emulator
from tests.support import wait_for
from worker.api.auth import ApiKeyAuth
from worker.api.backoff import RetryPolicy
from worker.api.client import ApiClient
from worker.api.errors import BadRequest, Conflict, MethodNotAllowed, NotFound, OutcomeUnknown
from worker.api.governor import Governor
from worker.api.schemas import Voiceprint, VoiceprintState

OWNER, SPACE = "demo", "main"
VP_ROUTE = "/spaces/{owner}/{space}/voiceprints/{identity}/{voiceprint}"


def client_for(url: str, *, timeout: float = 10.0) -> ApiClient:
    return ApiClient(
        url,
        ApiKeyAuth(SecretStr(DEMO_KEY)),
        governor=Governor(500, 50),
        request_timeout=timeout,
        retry=RetryPolicy(max_retries=3, max_time=30, base=0.05),
    )


@pytest.fixture
async def emu() -> AsyncIterator[EmulatorHandle]:
    async with running_emulator() as handle:
        yield handle


async def computed(api: ApiClient, wav: Path, identity: str, handle: str = "main") -> Voiceprint:
    """`identity` with a voiceprint `handle` computed from `wav` (one audio, one record)."""
    await api.create_identity(OWNER, SPACE, identity)
    audio = await api.create_audio(OWNER, SPACE, alias=f"a-{identity}", identity=identity)
    await api.upload_audio_file(OWNER, SPACE, audio.handle, wav)
    await api.create_voiceprint(OWNER, SPACE, identity, "phone/v1", handle=handle)
    await api.add_audio_to_voiceprint(OWNER, SPACE, identity, handle, audio.handle)
    return await api.compute_voiceprint(OWNER, SPACE, identity, handle)


async def test_rename_moves_the_handle_and_keeps_the_voiceprint(
    emu: EmulatorHandle, tmp_path: Path
) -> None:
    wav = write_audio(tmp_path / "ann.wav", voice_s=5.0, samplerate=8000)
    async with client_for(emu.base_url) as api:
        before = await computed(api, wav, "ann")
        [audio] = [a.handle async for a in api.list_voiceprint_audios(OWNER, SPACE, "ann", "main")]
        renamed = await api.rename_voiceprint(
            OWNER, SPACE, "ann", "main", handle="main-old", alias="phone v1, retired"
        )
        assert (renamed.handle, renamed.alias) == ("main-old", "phone v1, retired")
        got = await api.get_voiceprint(OWNER, SPACE, "ann", "main-old")
        assert got == renamed
        kept = ("id", "state", "model", "audios", "computed_at", "created_at")
        assert {k: getattr(got, k) for k in kept} == {k: getattr(before, k) for k in kept}
        assert got.state is VoiceprintState.COMPUTED
        moved = [
            a.handle async for a in api.list_voiceprint_audios(OWNER, SPACE, "ann", "main-old")
        ]
        assert moved == [audio]
        with pytest.raises(NotFound, match=r"HTTP 404: voiceprint main not found for identity"):
            await api.get_voiceprint(OWNER, SPACE, "ann", "main")

        # The handle is free again; taking it back from another voiceprint is a 409.
        await api.create_voiceprint(OWNER, SPACE, "ann", "phone/v1", handle="main")
        with pytest.raises(Conflict, match=r"HTTP 409: voiceprint main already exists"):
            await api.rename_voiceprint(OWNER, SPACE, "ann", "main-old", handle="main")
        same = await api.rename_voiceprint(OWNER, SPACE, "ann", "main-old", handle="main-old")
        assert same == got  # its own handle: a no-op 200
        with pytest.raises(BadRequest, match=r"HTTP 400: handle 'Main' is invalid"):
            await api.rename_voiceprint(OWNER, SPACE, "ann", "main-old", handle="Main")
        with pytest.raises(NotFound, match=r"HTTP 404: voiceprint nope not found"):
            await api.rename_voiceprint(OWNER, SPACE, "ann", "nope", handle="fresh")
        with pytest.raises(ValueError, match=r"a voiceprint patch needs a handle, an alias"):
            await api.rename_voiceprint(OWNER, SPACE, "ann", "main-old")
        records = [r async for r in api.list_usage_records(OWNER)]
    assert [r.voiceprint.handle for r in records] == ["main"]  # the bill keeps its handle
    # The request log shows every rename sent; the patch of nothing was never sent.
    patched = [r.path.rsplit("/", 1)[1] for r in emu.requests if r.method == "PATCH"]
    assert patched == ["main", "main-old", "main-old", "main-old", "nope"]
    stats = await emu.stats()
    assert stats["requests"]["by_route"][f"PATCH {VP_ROUTE}"] == 5
    assert stats["lifecycle"]["renamed"] == 2


async def test_delete_removes_only_the_voiceprint(emu: EmulatorHandle, tmp_path: Path) -> None:
    wav = write_audio(tmp_path / "bob.wav", voice_s=5.0, samplerate=8000)
    async with client_for(emu.base_url) as api:
        await computed(api, wav, "bob")
        [audio] = [a async for a in api.list_voiceprint_audios(OWNER, SPACE, "bob", "main")]
        assert audio.voiceprints == 1
        assert (await api.get_identity(OWNER, SPACE, "bob")).voiceprints == 1

        assert await api.delete_voiceprint(OWNER, SPACE, "bob", "main") is None
        with pytest.raises(NotFound, match=r"HTTP 404: voiceprint main not found"):
            await api.get_voiceprint(OWNER, SPACE, "bob", "main")
        with pytest.raises(NotFound, match=r"HTTP 404: voiceprint main not found"):
            await api.delete_voiceprint(OWNER, SPACE, "bob", "main")
        identity = await api.get_identity(OWNER, SPACE, "bob")
        still = await api.get_audio(OWNER, SPACE, audio.handle)
        records = [r async for r in api.list_usage_records(OWNER)]
        listed = [v async for v in api.list_identity_voiceprints(OWNER, SPACE, "bob")]
    assert identity.voiceprints == 0 and identity.audios == 1
    assert still.state == "available" and still.voiceprints == 0
    assert [(r.voiceprint.handle, r.voiceprint.identity.handle) for r in records] == [
        ("main", "bob")
    ]
    assert listed == []
    stats = await emu.stats()
    assert stats["requests"]["by_route"][f"DELETE {VP_ROUTE}"] == 2
    assert stats["lifecycle"]["deleted"] == 1


@pytest.mark.parametrize("removed", ["rename", "delete"])
async def test_a_route_taken_away_answers_405(removed: str) -> None:
    """`--no-voiceprint-rename` / `--no-voiceprint-delete`: that route answers 405, once (never
    retried), with an `Allow` header naming what the voiceprint still takes; the other works."""
    async with running_emulator(**{f"no_voiceprint_{removed}": True}) as emu:
        async with client_for(emu.base_url) as api:
            await api.create_identity(OWNER, SPACE, "cy")
            await api.create_voiceprint(OWNER, SPACE, "cy", "phone/v1", handle="main")
            with pytest.raises(MethodNotAllowed, match=r"HTTP 405: method \w+ is not allowed"):
                if removed == "rename":
                    await api.rename_voiceprint(OWNER, SPACE, "cy", "main", handle="main-2")
                else:
                    await api.delete_voiceprint(OWNER, SPACE, "cy", "main")
            assert (await api.get_voiceprint(OWNER, SPACE, "cy", "main")).handle == "main"
            if removed == "rename":
                await api.delete_voiceprint(OWNER, SPACE, "cy", "main")
            else:
                await api.rename_voiceprint(OWNER, SPACE, "cy", "main", handle="main-2")
        async with emu.client() as raw:
            method = "PATCH" if removed == "rename" else "DELETE"
            reply = await raw.call(method, f"/spaces/{OWNER}/{SPACE}/voiceprints/cy/main")
        stats = await emu.stats()
    other = "DELETE" if removed == "rename" else "PATCH"
    assert reply.status == 405 and reply.headers["Allow"] == f"GET, HEAD, {other}"
    assert reply.body == {"message": f"method {method} is not allowed on a voiceprint here"}
    assert stats["requests"]["by_route"][f"{method} {VP_ROUTE}"] == 2  # client once, raw once
    assert stats["requests"]["by_status"]["405"] == 2


async def test_both_taken_away_allow_only_reads() -> None:
    async with (
        running_emulator(no_voiceprint_rename=True, no_voiceprint_delete=True) as emu,
        client_for(emu.base_url) as api,
    ):
        await api.create_identity(OWNER, SPACE, "cy")
        await api.create_voiceprint(OWNER, SPACE, "cy", "phone/v1", handle="main")
        with pytest.raises(MethodNotAllowed) as renaming:
            await api.rename_voiceprint(OWNER, SPACE, "cy", "main", alias="x")
        with pytest.raises(MethodNotAllowed) as deleting:
            await api.delete_voiceprint(OWNER, SPACE, "cy", "main")
    for info in (renaming, deleting):
        assert info.value.allow == ("GET", "HEAD") and info.value.attempts == 1


async def test_an_unknown_outcome_is_not_repeated(tmp_path: Path) -> None:
    """UNSAFE: a repeat of a rename or delete that was done answers 404 as if it failed, so a
    timeout raises `OutcomeUnknown` at once and the caller reads what happened."""
    async with running_emulator(state_file=tmp_path / "emulator.json") as emu:
        async with client_for(emu.base_url) as api:
            for identity in ("dee", "eve"):
                await api.create_identity(OWNER, SPACE, identity)
                await api.create_voiceprint(OWNER, SPACE, identity, "phone/v1", handle="main")
        await emu.restart(latency_ms=600)
        async with client_for(emu.base_url, timeout=0.2) as impatient:
            with pytest.raises(OutcomeUnknown, match=r"outcome unknown \(timeout\)") as renaming:
                await impatient.rename_voiceprint(OWNER, SPACE, "dee", "main", handle="main-2")
            with pytest.raises(OutcomeUnknown, match=r"outcome unknown \(timeout\)") as deleting:
                await impatient.delete_voiceprint(OWNER, SPACE, "eve", "main")
        await wait_for(lambda: not emu.emulator.stats.in_flight, 20, "the requests to end")
        by_route = (await emu.stats())["requests"]["by_route"]
        await emu.restart(latency_ms=0)
        async with client_for(emu.base_url) as api:
            moved = await api.get_voiceprint(OWNER, SPACE, "dee", "main-2")
            left = [v async for v in api.list_identity_voiceprints(OWNER, SPACE, "eve")]
    assert renaming.value.attempts == 1 and deleting.value.attempts == 1
    assert by_route[f"PATCH {VP_ROUTE}"] == 1 and by_route[f"DELETE {VP_ROUTE}"] == 1
    assert moved.handle == "main-2" and left == []  # both took effect: reading tells


async def test_both_lists_page_past_one_page(emu: EmulatorHandle) -> None:
    async with client_for(emu.base_url) as api:
        handles = [f"p-{i}" for i in range(7)]
        async with anyio.create_task_group() as tg:
            for handle in handles:
                tg.start_soon(api.create_identity, OWNER, SPACE, handle)
        for handle in handles:
            await api.create_voiceprint(OWNER, SPACE, "p-0", "phone/v1", handle=f"vp-{handle}")
        await emu.reset_stats()
        identities = [i.handle async for i in api.list_identities(OWNER, SPACE, page_size=3)]
        voiceprints = [
            v.handle async for v in api.list_identity_voiceprints(OWNER, SPACE, "p-0", page_size=3)
        ]
        first = [i.handle async for i in api.list_identities(OWNER, SPACE)]
        stats = await emu.stats()
    assert sorted(identities) == handles and sorted(first) == handles
    assert sorted(voiceprints) == [f"vp-{h}" for h in handles]
    by_route: dict[str, Any] = stats["requests"]["by_route"]
    assert by_route["GET /spaces/{owner}/{space}/identities"] == 3 + 1  # pages of 3, 3, 1; 50
    assert by_route["GET /spaces/{owner}/{space}/identities/{identity}/voiceprints"] == 3


async def api_counts(emu: EmulatorHandle) -> dict[str, int]:
    """Each identity's `voiceprints` count, read raw."""
    async with emu.client() as raw:
        reply = await raw.get(f"/spaces/{OWNER}/{SPACE}/identities?page-size=50")
    return {i["handle"]: i["voiceprints"] for i in reply.body}


async def test_rename_and_delete_survive_a_restart(tmp_path: Path) -> None:
    state_file = tmp_path / "emulator.json"
    async with running_emulator(state_file=state_file) as emu:
        async with client_for(emu.base_url) as api:
            for identity in ("fay", "gus"):
                await api.create_identity(OWNER, SPACE, identity)
                await api.create_voiceprint(OWNER, SPACE, identity, "phone/v1", handle="main")
            await api.rename_voiceprint(OWNER, SPACE, "fay", "main", handle="main-old")
            await api.delete_voiceprint(OWNER, SPACE, "gus", "main")
        await emu.restart()
        async with client_for(emu.base_url) as api:
            fay = [v.handle async for v in api.list_identity_voiceprints(OWNER, SPACE, "fay")]
            gus = [v.handle async for v in api.list_identity_voiceprints(OWNER, SPACE, "gus")]
        counts = await api_counts(emu)
    assert fay == ["main-old"] and gus == []
    assert counts == {"fay": 1, "gus": 0}


async def test_the_switches_reach_a_child_emulator_and_a_kill_loses_no_delete(
    tmp_path: Path,
) -> None:
    """`python -m emulator --no-voiceprint-rename --state-file F`: PATCH answers 405; an
    acknowledged DELETE is still done after SIGKILL and a restart with the same flags."""
    state_file = tmp_path / "emulator.json"
    async with emulator_process(state_file=state_file, no_voiceprint_rename=True) as proc:
        async with client_for(proc.base_url) as api:
            await api.create_identity(OWNER, SPACE, "hal")
            await api.create_voiceprint(OWNER, SPACE, "hal", "phone/v1", handle="main")
            await api.create_voiceprint(OWNER, SPACE, "hal", "phone/v1", handle="spare")
            with pytest.raises(MethodNotAllowed):
                await api.rename_voiceprint(OWNER, SPACE, "hal", "main", handle="main-2")
            await api.delete_voiceprint(OWNER, SPACE, "hal", "spare")
        proc.kill()
        await proc.wait()
        await proc.restart()
        async with client_for(proc.base_url) as api:
            left = [v.handle async for v in api.list_identity_voiceprints(OWNER, SPACE, "hal")]
            hal = await api.get_identity(OWNER, SPACE, "hal")
            with pytest.raises(MethodNotAllowed):
                await api.rename_voiceprint(OWNER, SPACE, "hal", "main", handle="main-2")
    assert left == ["main"] and hal.voiceprints == 1
