"""Emulator over real sockets in its asynchronous modes: the states a client must wait through.

`--file-delay-ms` and `--compute-delay-ms` (api-contract.md §5). The emulator runs on a
`FakeClock`: the test reads the states a client would poll, and moves time past each delay
instead of sleeping through it, so it can say that nothing settles a moment too early.
"""

from __future__ import annotations

import base64
from pathlib import Path

from tests.audiogen import write_audio
from tests.emulator_harness import ApiClient, running_emulator
from tests.fakeclock import FakeClock

SPACE = "/spaces/demo/main"
VP = f"{SPACE}/voiceprints/ann/vp"
OCTET = {"Content-Type": "application/octet-stream"}


async def _read(api: ApiClient, path: str) -> dict:
    reply = await api.get(path)
    assert reply.status == 200, reply.body
    return reply.body


async def test_files_and_compute_settle_later_and_collisions_are_409(tmp_path: Path) -> None:
    data = write_audio(tmp_path / "a.wav", voice_s=6.0).read_bytes()
    clock = FakeClock()
    async with (
        running_emulator(file_delay_ms=300, compute_delay_ms=300, clock=clock.utc) as emu,
        emu.client() as api,
    ):
        assert (await api.post(f"{SPACE}/identities", json={"handle": "ann"})).status == 201
        created = await api.post(
            f"{SPACE}/voiceprints", json={"identity": "ann", "model": "phone/v1", "minAudios": 2}
        )
        assert created.status == 201, created.body
        raw = (await api.post(f"{SPACE}/audios", json={"identity": "ann"})).body["handle"]
        uploaded = await api.post(f"{SPACE}/audios/{raw}/file", data=data, headers=OCTET)
        inline = await api.post(
            f"{SPACE}/audios", json={"identity": "ann", "file": base64.b64encode(data).decode()}
        )
        assert uploaded.body["state"] == inline.body["state"] == "avaitingFile"
        vp = f"{SPACE}/voiceprints/ann/{created.body['handle']}"
        early = await api.post(f"{vp}/audios/{raw}")
        assert early.status == 409 and "still being processed" in early.body["message"]
        again = await api.post(f"{SPACE}/audios/{raw}/file", data=data, headers=OCTET)
        assert again.status == 409 and "already has a file" in again.body["message"]

        audios = [f"{SPACE}/audios/{raw}", f"{SPACE}/audios/{inline.body['handle']}"]
        clock.advance(0.29)
        assert [(await _read(api, a))["state"] for a in audios] == ["avaitingFile"] * 2
        clock.advance(0.02)  # past the file delay
        assert [(await _read(api, a))["state"] for a in audios] == ["available"] * 2
        for handle in (raw, inline.body["handle"]):
            assert (await api.post(f"{vp}/audios/{handle}")).status == 200
        computed = await api.post(f"{vp}:compute")
        assert computed.status == 200 and computed.body["state"] == "computable"
        twice = await api.post(f"{vp}:compute")
        assert twice.status == 409 and "being computed" in twice.body["message"]
        clock.advance(0.29)
        assert (await _read(api, vp))["state"] == "computable"  # still being computed
        clock.advance(0.02)  # past the compute delay
        done = await _read(api, vp)
        assert done["state"] == "computed"
        assert done["computedAt"] is not None
        records = await api.get("/user/records/voiceprint")
        assert [r["voiceprint"]["handle"] for r in records.body] == [created.body["handle"]]
        stats = await emu.stats()
    assert stats["created"]["computes"] == 1 and stats["credits_used"] == {"demo": 1}
