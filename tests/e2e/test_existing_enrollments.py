"""Customers already enrolled (issue 28), end to end: a customer enrolled from one recording is
enrolled again from a new one under each `existing` policy, against the emulator over real
sockets, with and without the voiceprint routes a swap needs. Every test checks the server
through the API (what is under each handle, which audios, the usage records), not only the
report."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from tests.audiogen import write_audio
from tests.emulator_harness import DEMO_KEY, EmulatorHandle, running_emulator
from tests.misbehaving import Upstream, misbehaving, rewritten
from tests.support import MODEL, drop, job_manifest, make_queue, make_settings, report_of, run_once
from worker.api.auth import ApiKeyAuth
from worker.api.client import ApiClient
from worker.api.errors import NotFound
from worker.api.governor import Governor
from worker.enrollment.swap_rules import next_handle, retired_handle

OWNER, SPACE, WHO = "demo", "main", "cust-0"


def client_for(url: str) -> ApiClient:
    return ApiClient(url, ApiKeyAuth(SecretStr(DEMO_KEY)), governor=Governor(500, 50))


async def server_view(url: str, identity: str = WHO) -> dict[str, Any]:
    """Every voiceprint of the identity: handle → (id, model, state, audio aliases)."""
    async with client_for(url) as api:
        out: dict[str, Any] = {}
        async for vp in api.list_identity_voiceprints(OWNER, SPACE, identity):
            aliases = [
                a.alias async for a in api.list_voiceprint_audios(OWNER, SPACE, identity, vp.handle)
            ]
            out[vp.handle] = (vp.id, vp.model, vp.state.value, sorted(aliases))
        return out


async def records_of(url: str) -> list[str]:
    """The voiceprint handle each usage record of the owner bills, oldest first."""
    async with client_for(url) as api:
        return [r.voiceprint.handle async for r in api.list_usage_records(OWNER)]


@pytest.fixture
def queue(tmp_path: Path) -> Path:
    root = make_queue(tmp_path / "queue", [WHO], folders=())
    write_audio(root / "audio" / "new.wav", voice_s=6.0, samplerate=8000)
    return root


async def enrolled_once(queue: Path, url: str) -> dict[str, Any]:
    assert await run_once(make_settings(queue, url)) == 0
    return await server_view(url)


def new_recording(**fields: Any) -> dict[str, Any]:
    return {"identity": WHO, "audios": ["new.wav"], "model": MODEL, **fields}


@pytest.fixture
async def emu() -> AsyncIterator[EmulatorHandle]:
    async with running_emulator() as handle:
        yield handle


async def test_conflict_is_the_default_and_names_the_files(queue: Path, emu: EmulatorHandle):
    drop(queue, "first.json", job_manifest([WHO], MODEL))
    before = await enrolled_once(queue, emu.base_url)
    drop(queue, "again.json", new_recording())
    assert await run_once(make_settings(queue, emu.base_url)) == 1

    [row] = report_of(queue, "again")["enrollments"]
    assert row["outcome"] == "conflict"
    reason = row["error"]["reason"]
    assert "new.wav (sha256 " in reason and "existing: overwrite replaces it" in reason
    assert await server_view(emu.base_url) == before


async def test_skip_keeps_the_voiceprint_untouched(queue: Path, emu: EmulatorHandle):
    drop(queue, "first.json", job_manifest([WHO], MODEL))
    before = await enrolled_once(queue, emu.base_url)
    drop(queue, "again.json", new_recording(existing="skip"))
    assert await run_once(make_settings(queue, emu.base_url)) == 0  # kept counts as success

    report = report_of(queue, "again")
    [row] = report["enrollments"]
    assert row["outcome"] == "kept" and report["counts"]["kept"] == 1
    assert "new.wav" in row["error"]["reason"]
    assert await server_view(emu.base_url) == before
    assert len(await records_of(emu.base_url)) == 1


@pytest.mark.parametrize("retire", ["delete", "keep"])
async def test_overwrite_with_rename_builds_beside_and_switches(
    queue: Path, emu: EmulatorHandle, retire: str
):
    drop(queue, "first.json", job_manifest([WHO], MODEL))
    [(old_id, _, _, old_audios)] = (await enrolled_once(queue, emu.base_url)).values()
    drop(queue, "again.json", new_recording(existing="overwrite", retire=retire))
    assert await run_once(make_settings(queue, emu.base_url)) == 0

    report = report_of(queue, "again")
    [row] = report["enrollments"]
    assert row["outcome"] == "replaced", row
    assert report["credits_spent"] == 1 and report["usage"]["found"] == 1
    after = await server_view(emu.base_url)
    new_id, model, state, audios = after["main"]
    assert (model, state) == (MODEL, "computed") and new_id != old_id
    assert audios != old_audios and len(audios) == 1  # computed from the new file
    assert row["replaced"]["old_voiceprint_id"] == old_id
    assert any("new.wav" in f for f in row["replaced"]["new_files"])
    retired = retired_handle("main", old_id)
    if retire == "keep":
        assert after[retired][0] == old_id and row["replaced"]["retired"].startswith("kept as")
    else:
        assert retired not in after and row["replaced"]["retired"] == "deleted"
    assert next_handle("main") not in after
    assert set(after) <= {"main", retired}
    # One more usage record: the new compute, billed to the handle it was built under.
    assert await records_of(emu.base_url) == ["main", next_handle("main")]


async def test_overwrite_without_rename_deletes_once_the_new_audios_are_ready(
    queue: Path, tmp_path: Path
):
    async with running_emulator(no_voiceprint_rename=True) as emu:
        drop(queue, "first.json", job_manifest([WHO], MODEL))
        [(old_id, _, _, _)] = (await enrolled_once(queue, emu.base_url)).values()
        drop(queue, "again.json", new_recording(existing="overwrite"))
        assert await run_once(make_settings(queue, emu.base_url)) == 0

        [row] = report_of(queue, "again")["enrollments"]
        assert row["outcome"] == "replaced" and row["replaced"]["retired"] == "deleted"
        after = await server_view(emu.base_url)
        assert list(after) == ["main"] and after["main"][0] != old_id
        # The old voiceprint went only after the new audio was created and uploaded.
        paths = [(r.method, r.path) for r in emu.server.requests]
        delete = paths.index(("DELETE", f"/v1/spaces/{OWNER}/{SPACE}/voiceprints/{WHO}/main"))
        uploads = [i for i, (m, p) in enumerate(paths) if m == "POST" and p.endswith("/audios")]
        assert uploads and uploads[-1] < delete
        assert await records_of(emu.base_url) == ["main", "main"]


async def test_overwrite_with_keep_and_no_rename_fails_and_touches_nothing(queue: Path):
    async with running_emulator(no_voiceprint_rename=True) as emu:
        drop(queue, "first.json", job_manifest([WHO], MODEL))
        before = await enrolled_once(queue, emu.base_url)
        drop(queue, "again.json", new_recording(existing="overwrite", retire="keep"))
        assert await run_once(make_settings(queue, emu.base_url)) == 1
        [row] = report_of(queue, "again")["enrollments"]
        assert row["outcome"] == "failed" and "retire: keep needs" in row["error"]["reason"]
        assert await server_view(emu.base_url) == before


async def test_overwrite_without_rename_or_delete_fails_and_touches_nothing(queue: Path):
    async with running_emulator(no_voiceprint_rename=True, no_voiceprint_delete=True) as emu:
        drop(queue, "first.json", job_manifest([WHO], MODEL))
        before = await enrolled_once(queue, emu.base_url)
        stats = await emu.stats()
        drop(queue, "again.json", new_recording(existing="overwrite"))
        assert await run_once(make_settings(queue, emu.base_url)) == 1

        [row] = report_of(queue, "again")["enrollments"]
        assert row["outcome"] == "failed" and row["error"]["step"] == "swap"
        assert "offers neither" in row["error"]["reason"]
        assert await server_view(emu.base_url) == before
        assert (await emu.stats())["created"] == stats["created"]  # nothing uploaded either
        with pytest.raises(NotFound):
            async with client_for(emu.base_url) as api:
                await api.get_voiceprint(OWNER, SPACE, WHO, next_handle("main"))


async def test_overwrite_of_an_identical_voiceprint_is_unchanged(queue: Path, emu: EmulatorHandle):
    drop(queue, "first.json", job_manifest([WHO], MODEL))
    before = await enrolled_once(queue, emu.base_url)
    drop(queue, "again.json", {**job_manifest([WHO], MODEL), "existing": "overwrite"})
    assert await run_once(make_settings(queue, emu.base_url)) == 0
    [row] = report_of(queue, "again")["enrollments"]
    assert row["outcome"] == "unchanged"
    assert await server_view(emu.base_url) == before


def _without_id(answer: Upstream) -> web.Response:
    doc = json.loads(answer.body)
    doc.pop("id", None)
    return answer.respond(body=json.dumps(doc).encode())


async def test_overwrite_of_a_voiceprint_without_an_id_fails_and_touches_nothing(
    queue: Path, emu: EmulatorHandle
):
    """Every swap step tells the old voiceprint from the new one by its id: without one, it
    must not guess (it would take the old one for the new and report `replaced`)."""
    drop(queue, "first.json", job_manifest([WHO], MODEL))
    before = await enrolled_once(queue, emu.base_url)
    async with misbehaving(emu.root_url) as proxy:
        proxy.on("GET", rf"/voiceprints/{WHO}/main$", rewritten(_without_id))
        drop(queue, "again.json", new_recording(existing="overwrite"))
        assert await run_once(make_settings(queue, proxy.base_url)) == 1
    [row] = report_of(queue, "again")["enrollments"]
    assert row["outcome"] == "failed" and "no id" in row["error"]["reason"]
    assert await server_view(emu.base_url) == before
