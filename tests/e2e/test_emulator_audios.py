"""Emulator over real sockets: audios, both upload forms, measurement, identify, 413."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.audiogen import write_audio, write_garbage
from tests.emulator_harness import ApiClient, EmulatorHandle, running_emulator
from tests.support import iso_seconds

SPACE = "/spaces/demo/main"
OCTET = {"Content-Type": "application/octet-stream"}


@pytest.fixture
async def api(emulator: EmulatorHandle) -> AsyncIterator[ApiClient]:
    async with emulator.client() as client:
        yield client


async def _upload(api: ApiClient, data: bytes, **create: object) -> dict:
    created = await api.post(f"{SPACE}/audios", json=create)
    assert created.status == 201, created.body
    reply = await api.post(
        f"{SPACE}/audios/{created.body['handle']}/file", data=data, headers=OCTET
    )
    assert reply.status == 200, reply.body
    return reply.body


async def test_create_without_file_waits_for_it(api: ApiClient) -> None:
    reply = await api.post(f"{SPACE}/audios", json={"alias": "sha256:abc"})
    assert reply.status == 201
    body = reply.body
    assert body["state"] == "avaitingFile"  # the vendor's spelling
    assert body["alias"] == "sha256:abc"
    assert body["duration"] is None and body["uploadedAt"] is None and body["identity"] is None
    assert set(body) >= {
        "id", "handle", "alias", "state", "duration", "voiceDuration", "sampleRate",
        "identity", "voiceprints", "verifications", "createdAt", "uploadedAt",
    }  # fmt: skip
    assert "handle" not in (await api.post(f"{SPACE}/audios", json={})).body["handle"]


@pytest.mark.parametrize(
    ("name", "rate", "voice", "silence"),
    [
        ("a.wav", 8000, 2.0, 1.0),
        ("b.flac", 16000, 3.0, 0.5),
        ("c.ogg", 48000, 1.5, 1.5),  # Ogg Opus: decoded at 48 kHz whatever it was made from
        ("d.wav", 22050, 0.0, 2.0),
    ],
)
async def test_raw_upload_measures_the_file(
    api: ApiClient, tmp_path: Path, name: str, rate: int, voice: float, silence: float
) -> None:
    path = write_audio(tmp_path / name, voice_s=voice, silence_s=silence, samplerate=rate)
    body = await _upload(api, path.read_bytes())
    assert body["state"] == "available"
    assert body["sampleRate"] == rate
    assert iso_seconds(body["duration"]) == pytest.approx(voice + silence, abs=0.01)
    # Silence never counts as voice; the tone does, within one 30 ms frame or so.
    assert iso_seconds(body["voiceDuration"]) == pytest.approx(voice, abs=0.08)
    assert body["uploadedAt"] is not None


async def test_base64_create_measures_and_links_identity(api: ApiClient, tmp_path: Path) -> None:
    await api.post(f"{SPACE}/identities", json={"handle": "ann"})
    data = write_audio(tmp_path / "x.flac", voice_s=2.5, silence_s=0.5).read_bytes()
    reply = await api.post(
        f"{SPACE}/audios",
        json={"file": base64.b64encode(data).decode(), "identity": "ann", "alias": "first"},
    )
    assert reply.status == 201
    assert reply.body["state"] == "available"
    assert iso_seconds(reply.body["voiceDuration"]) == pytest.approx(2.5, abs=0.08)
    assert reply.body["identity"] == {"handle": "ann", "alias": None}
    ident = await api.get(f"{SPACE}/identities/ann")
    assert ident.body["audios"] == 1


async def test_base64_create_rejects_bad_base64_and_unknown_identity(api: ApiClient) -> None:
    bad = await api.post(f"{SPACE}/audios", json={"file": "!!not base64!!"})
    unknown = await api.post(f"{SPACE}/audios", json={"identity": "ghost"})
    bad_alias = await api.post(f"{SPACE}/audios", json={"alias": "x" * 101})
    assert bad.status == 400 and "base64" in bad.body["message"]
    assert unknown.status == 404
    assert bad_alias.status == 400
    listing = await api.get(f"{SPACE}/audios")
    assert listing.body == []  # refused creates leave nothing behind


async def test_undecodable_file_becomes_not_available(api: ApiClient, tmp_path: Path) -> None:
    body = await _upload(api, write_garbage(tmp_path / "g.wav").read_bytes())
    assert body["state"] == "notAvailable"
    assert body["duration"] is None and body["sampleRate"] is None
    empty = await _upload(api, b"")
    assert empty["state"] == "notAvailable"


async def test_an_audio_takes_exactly_one_file(api: ApiClient, tmp_path: Path) -> None:
    data = write_audio(tmp_path / "a.wav", voice_s=1.0).read_bytes()
    body = await _upload(api, data)
    second = await api.post(f"{SPACE}/audios/{body['handle']}/file", data=data, headers=OCTET)
    assert second.status == 409 and "one" in second.body["message"]
    b64 = await api.post(
        f"{SPACE}/audios", json={"file": base64.b64encode(data).decode()}
    )  # a base64 create already holds its file
    third = await api.post(f"{SPACE}/audios/{b64.body['handle']}/file", data=data, headers=OCTET)
    assert third.status == 409


async def test_upload_to_unknown_audio_is_404_and_wrong_type_400(
    api: ApiClient, tmp_path: Path
) -> None:
    data = write_audio(tmp_path / "a.wav", voice_s=0.5).read_bytes()
    missing = await api.post(f"{SPACE}/audios/nope/file", data=data, headers=OCTET)
    created = await api.post(f"{SPACE}/audios", json={})
    as_json = await api.post(f"{SPACE}/audios/{created.body['handle']}/file", json={"a": 1})
    assert missing.status == 404
    assert as_json.status == 400 and "octet-stream" in as_json.body["message"]


async def test_files_above_the_limit_are_413_streamed_or_declared(tmp_path: Path) -> None:
    async with running_emulator(max_upload_bytes=100_000) as emu, emu.client() as api:
        created = await api.post(f"{SPACE}/audios", json={})
        handle = created.body["handle"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
            for _ in range(30):
                yield b"\0" * 10_000

        streamed = await api.post(f"{SPACE}/audios/{handle}/file", data=chunks(), headers=OCTET)
        declared = await api.post(
            f"{SPACE}/audios/{handle}/file", data=b"\0" * 100_001, headers=OCTET
        )
        b64 = await api.post(
            f"{SPACE}/audios", json={"file": base64.b64encode(b"\0" * 100_001).decode()}
        )
        exact = await api.post(f"{SPACE}/audios/{handle}/file", data=b"\0" * 100_000, headers=OCTET)
    assert streamed.status == 413 and "limit" in streamed.body["message"]
    assert declared.status == 413
    assert b64.status == 413
    assert exact.status == 200 and exact.body["state"] == "notAvailable"


async def test_default_limit_is_50_mib(emulator: EmulatorHandle) -> None:
    async with emulator.client() as api:
        created = await api.post(f"{SPACE}/audios", json={})
        handle = created.body["handle"]
        big = await api.post(
            f"{SPACE}/audios/{handle}/file",
            data=io.BytesIO(b"\0" * (50 * 1024 * 1024 + 1)),
            headers=OCTET,
        )
        # The connection survived the refusal: the same audio still takes its file.
        after = await api.get(f"{SPACE}/audios/{handle}")
    assert big.status == 413
    assert after.status == 200 and after.body["state"] == "avaitingFile"


async def test_identify_links_once_and_irreversibly(api: ApiClient, tmp_path: Path) -> None:
    for handle in ("ann", "bob"):
        await api.post(f"{SPACE}/identities", json={"handle": handle})
    created = await api.post(f"{SPACE}/audios", json={})
    h = created.body["handle"]
    first = await api.post(f"{SPACE}/audios/{h}:identify", json={"identity": "ann"})
    same = await api.post(f"{SPACE}/audios/{h}:identify", json={"identity": "ann"})
    other = await api.post(f"{SPACE}/audios/{h}:identify", json={"identity": "bob"})
    ghost = await api.post(f"{SPACE}/audios/{h}:identify", json={"identity": "ghost"})
    no_audio = await api.post(f"{SPACE}/audios/zzz:identify", json={"identity": "ann"})
    assert first.status == 200 and first.body["identity"]["handle"] == "ann"
    assert same.status == 200
    assert other.status == 409
    assert ghost.status == 404 and no_audio.status == 404
    assert (await api.get(f"{SPACE}/identities/ann")).body["audios"] == 1
    assert (await api.get(f"{SPACE}/identities/bob")).body["audios"] == 0


async def test_audio_list_search_by_alias(api: ApiClient) -> None:
    for alias in ("sha256:aaa", "sha256:bbb", None):
        await api.post(f"{SPACE}/audios", json={"alias": alias})
    found = await api.get(f"{SPACE}/audios", params={"search": "sha256:bbb"})
    all_ = await api.get(f"{SPACE}/audios")
    assert [a["alias"] for a in found.body] == ["sha256:bbb"]
    assert found.headers["Item-Total"] == "1"
    assert len(all_.body) == 3
    by_upload = await api.get(f"{SPACE}/audios", params={"sort": "uploadedAt"})
    assert by_upload.status == 200


async def test_stats_count_uploads_per_audio(emulator: EmulatorHandle, tmp_path: Path) -> None:
    data = write_audio(tmp_path / "a.wav", voice_s=0.5).read_bytes()
    async with emulator.client() as api:
        body = await _upload(api, data)
        await api.post(f"{SPACE}/audios/{body['handle']}/file", data=data, headers=OCTET)
    stats = await emulator.stats()
    assert stats["created"]["audios"] == 1
    assert stats["uploads"]["accepted"] == 1
    assert stats["uploads"]["attempts_per_audio"] == {f"demo/main/{body['handle']}": 2}
    route = "POST /spaces/{owner}/{space}/audios/{audio}/file"
    assert stats["requests"]["by_route"][route] == 2
