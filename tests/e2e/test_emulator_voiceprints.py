"""Emulator over real sockets: voiceprints, model requirements (422), compute, credits,
usage records and identity verifications."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.audiogen import write_audio, write_garbage
from tests.emulator_harness import OTHER_KEY, ApiClient, EmulatorHandle, running_emulator

SPACE = "/spaces/demo/main"
OCTET = {"Content-Type": "application/octet-stream"}


@pytest.fixture
async def api(emulator: EmulatorHandle) -> AsyncIterator[ApiClient]:
    async with emulator.client() as client:
        yield client


async def audio(
    api: ApiClient,
    tmp_path: Path,
    voice: float,
    silence: float = 0.0,
    rate: int = 16000,
    space: str = SPACE,
) -> str:
    """Upload a generated file (two-step) and return the audio handle."""
    path = write_audio(tmp_path / f"{voice}-{silence}-{rate}.wav", voice, silence, rate)
    created = await api.post(f"{space}/audios", json={})
    handle = created.body["handle"]
    reply = await api.post(
        f"{space}/audios/{handle}/file", data=io.BytesIO(path.read_bytes()), headers=OCTET
    )
    assert reply.status == 200, reply.body
    return handle


async def voiceprint(
    api: ApiClient,
    identity: str = "ann",
    handle: str = "vp",
    model: object = "phone/v1",
    min_audios: int = 2,
    space: str = SPACE,
) -> dict:
    await api.post(f"{space}/identities", json={"handle": identity})
    reply = await api.post(
        f"{space}/voiceprints",
        json={"identity": identity, "model": model, "minAudios": min_audios, "handle": handle},
    )
    assert reply.status == 201, reply.body
    return reply.body


async def test_create_voiceprint_fields_and_model_forms(api: ApiClient) -> None:
    body = await voiceprint(api, model={"handle": "digital", "version": "v1"}, min_audios=3)
    assert body["state"] == "notComputable"
    assert body["model"] == "digital/v1"  # the guide's object form, answered as the string
    assert body["identity"] == {"handle": "ann", "alias": None}
    assert body["minAudios"] == 3 and body["audios"] == 0 and body["computedAt"] is None
    assert body["totalDuration"] == "PT0.000S" and body["totalVoiceDuration"] == "PT0.000S"
    assert set(body) == {
        "id", "handle", "alias", "state", "model", "identity", "totalDuration",
        "totalVoiceDuration", "minAudios", "audios", "verifications", "createdAt", "computedAt",
    }  # fmt: skip
    fetched = await api.get(f"{SPACE}/voiceprints/ann/vp")
    assert fetched.status == 200 and fetched.body == body
    assert (await api.get(f"{SPACE}/identities/ann")).body["voiceprints"] == 1


async def test_create_voiceprint_errors(api: ApiClient) -> None:
    await voiceprint(api)
    base = {"identity": "ann", "model": "phone/v1", "minAudios": 1}
    cases = [
        ({**base, "handle": "vp"}, 409),  # unique within the identity
        ({**base, "identity": "ghost"}, 404),
        ({**base, "model": "phone/v9"}, 404),
        ({**base, "minAudios": 0}, 400),
        ({**base, "minAudios": 21}, 400),
        ({**base, "minAudios": "2"}, 400),
        ({"identity": "ann", "model": "phone/v1"}, 400),  # minAudios is required
        ({**base, "handle": "Bad Handle"}, 400),
    ]
    for body, status in cases:
        reply = await api.post(f"{SPACE}/voiceprints", json=body)
        assert reply.status == status, (body, reply.body)
        assert reply.body["message"]
    # Same handle under another identity is fine; no handle → the server picks one.
    await api.post(f"{SPACE}/identities", json={"handle": "bob"})
    bob = await api.post(f"{SPACE}/voiceprints", json={**base, "identity": "bob", "handle": "vp"})
    auto = await api.post(f"{SPACE}/voiceprints", json=base)
    assert bob.status == 201 and auto.status == 201 and auto.body["handle"]
    missing = await api.get(f"{SPACE}/voiceprints/ann/nope")
    assert missing.status == 404


async def test_state_machine_add_remove_compute(api: ApiClient, tmp_path: Path) -> None:
    await voiceprint(api, min_audios=2)
    a1 = await audio(api, tmp_path, voice=3.0)
    a2 = await audio(api, tmp_path, voice=2.5, silence=1.0)
    vp = f"{SPACE}/voiceprints/ann/vp"

    early = await api.post(f"{vp}:compute")
    assert early.status == 409 and "not computable" in early.body["message"]

    one = await api.post(f"{vp}/audios/{a1}")
    assert one.status == 200 and one.body["state"] == "notComputable"  # 1 of 2 audios
    two = await api.post(f"{vp}/audios/{a2}")
    assert two.status == 200 and two.body["state"] == "computable"
    assert two.body["audios"] == 2
    assert float(two.body["totalVoiceDuration"][2:-1]) == pytest.approx(5.5, abs=0.1)
    assert float(two.body["totalDuration"][2:-1]) == pytest.approx(6.5, abs=0.01)
    again = await api.post(f"{vp}/audios/{a1}")
    assert again.status == 409 and "already added" in again.body["message"]

    removed = await api.delete(f"{vp}/audios/{a2}")
    assert removed.status == 200 and removed.body["state"] == "notComputable"
    not_added = await api.delete(f"{vp}/audios/{a2}")
    assert not_added.status == 404
    assert (await api.post(f"{vp}/audios/{a2}")).body["state"] == "computable"

    listed = await api.get(f"{vp}/audios")
    assert sorted(a["handle"] for a in listed.body) == sorted([a1, a2])
    assert all(a["identity"]["handle"] == "ann" for a in listed.body)  # linked on add

    computed = await api.post(f"{vp}:compute")
    assert computed.status == 200 and computed.body["state"] == "computed"
    assert computed.body["computedAt"] is not None
    twice = await api.post(f"{vp}:compute")
    assert twice.status == 409 and "already computed" in twice.body["message"]
    a3 = await audio(api, tmp_path, voice=3.0, silence=0.1)
    assert (await api.post(f"{vp}/audios/{a3}")).status == 409
    assert (await api.delete(f"{vp}/audios/{a1}")).status == 409
    assert (await api.get(vp)).body["state"] == "computed"


async def test_enough_audios_but_too_little_voice_is_not_computable(
    api: ApiClient, tmp_path: Path
) -> None:
    # minAudios 1 → each audio needs 4.5 s of voice; minAudios 3 → 1.5 s each, 4.5 s in total.
    await voiceprint(api, min_audios=3)
    for _ in range(3):
        handle = await audio(api, tmp_path, voice=1.5, silence=0.2)
        reply = await api.post(f"{SPACE}/voiceprints/ann/vp/audios/{handle}")
        assert reply.status == 200
    assert reply.body["state"] == "computable"
    await voiceprint(api, handle="vp4", min_audios=4)  # needs 1.125 s each
    for _ in range(4):
        handle = await audio(api, tmp_path, voice=1.13, silence=0.3)
        reply = await api.post(f"{SPACE}/voiceprints/ann/vp4/audios/{handle}")
    # 4 audios, about 4.5 s voice; and with one fewer it cannot be computable.
    assert reply.body["audios"] == 4
    removed = await api.delete(f"{SPACE}/voiceprints/ann/vp4/audios/{handle}")
    assert removed.body["state"] == "notComputable"


async def test_model_requirements_give_422_with_a_reason(api: ApiClient, tmp_path: Path) -> None:
    await voiceprint(api, handle="phone", min_audios=2)
    await voiceprint(api, handle="digital", model="digital/v1", min_audios=1)
    short_voice = await audio(api, tmp_path, voice=1.2, silence=3.0)
    low_rate = await audio(api, tmp_path, voice=5.0, rate=8000)
    too_long = await audio(api, tmp_path, voice=1.0, silence=120.0, rate=8000)
    garbage = (await api.post(f"{SPACE}/audios", json={})).body["handle"]
    await api.post(
        f"{SPACE}/audios/{garbage}/file",
        data=write_garbage(tmp_path / "g.wav").read_bytes(),
        headers=OCTET,
    )

    voice = await api.post(f"{SPACE}/voiceprints/ann/phone/audios/{short_voice}")
    assert voice.status == 422
    assert voice.body["message"] == (
        f"audio {short_voice}: voice 1.20 s is below the 2.25 s this model needs per audio "
        "(4.5 s ÷ minAudios 2)"
    )
    rate = await api.post(f"{SPACE}/voiceprints/ann/digital/audios/{low_rate}")
    assert rate.status == 422 and "8000 Hz is below the 16000 Hz" in rate.body["message"]
    phone_ok = await api.post(f"{SPACE}/voiceprints/ann/phone/audios/{low_rate}")
    assert phone_ok.status == 200  # phone/v1 takes 8 kHz
    long = await api.post(f"{SPACE}/voiceprints/ann/phone/audios/{too_long}")
    assert long.status == 422 and "121.0 s is above the 120 s maximum" in long.body["message"]
    broken = await api.post(f"{SPACE}/voiceprints/ann/phone/audios/{garbage}")
    assert broken.status == 422 and "could not be decoded" in broken.body["message"]
    # A refused audio is not added, and not linked to the identity either.
    fetched = await api.get(f"{SPACE}/audios/{short_voice}")
    assert fetched.body["identity"] is None and fetched.body["voiceprints"] == 0


async def test_add_audio_conflicts(api: ApiClient, tmp_path: Path) -> None:
    await voiceprint(api, identity="ann")
    await voiceprint(api, identity="bob")
    bobs = await audio(api, tmp_path, voice=3.0)
    assert (await api.post(f"{SPACE}/voiceprints/bob/vp/audios/{bobs}")).status == 200
    foreign = await api.post(f"{SPACE}/voiceprints/ann/vp/audios/{bobs}")
    assert foreign.status == 409 and "bob" in foreign.body["message"]
    waiting = (await api.post(f"{SPACE}/audios", json={})).body["handle"]
    no_file = await api.post(f"{SPACE}/voiceprints/ann/vp/audios/{waiting}")
    assert no_file.status == 409
    assert (await api.post(f"{SPACE}/voiceprints/ann/vp/audios/nope")).status == 404
    assert (await api.post(f"{SPACE}/voiceprints/ann/nope/audios/{bobs}")).status == 404


async def _computable(api: ApiClient, tmp_path: Path, identity: str, space: str = SPACE) -> str:
    await voiceprint(api, identity=identity, min_audios=1, space=space)
    handle = await audio(api, tmp_path, voice=5.0, space=space)
    reply = await api.post(f"{space}/voiceprints/{identity}/vp/audios/{handle}")
    assert reply.body["state"] == "computable"
    return f"{space}/voiceprints/{identity}/vp"


async def test_credits_run_out_per_owner_with_429_and_no_retry_after(tmp_path: Path) -> None:
    async with running_emulator(credits=1) as emu, emu.client() as api:
        first = await _computable(api, tmp_path, "ann")
        second = await _computable(api, tmp_path, "bob")
        in_acme = await _computable(api, tmp_path, "cat", space="/spaces/acme/onboarding")
        assert (await api.post(f"{first}:compute")).status == 200
        refused = await api.post(f"{second}:compute")
        assert refused.status == 429
        assert refused.body == {"message": "Not enough credits"}
        assert "Retry-After" not in refused.headers
        assert (await api.get(second)).body["state"] == "computable"  # nothing happened
        # Credits are per owner: acme still has its own.
        assert (await api.post(f"{in_acme}:compute")).status == 200
        stats = await emu.stats()
    assert stats["credits_used"] == {"demo": 1, "acme": 1}
    assert stats["credit_refusals"] == 1
    assert stats["created"]["computes"] == 2


async def test_compute_writes_usage_records(api: ApiClient, tmp_path: Path) -> None:
    vp = await _computable(api, tmp_path, "ann")
    await api.post(f"{vp}:compute")
    acme_vp = await _computable(api, tmp_path, "cat", space="/spaces/acme/onboarding")
    await api.post(f"{acme_vp}:compute")
    mine = await api.get("/user/records/voiceprint")
    org = await api.get("/orgs/acme/records/voiceprint")
    assert mine.status == 200 and org.status == 200
    assert mine.headers["Item-Total"] == "1" and org.headers["Item-Total"] == "1"
    record = mine.body[0]
    assert record["model"] == "phone/v1"
    assert record["actor"] == {"handle": "demo", "alias": "Demo User"}
    assert record["voiceprint"]["handle"] == "vp"
    assert record["voiceprint"]["state"] == "computed"
    assert record["voiceprint"]["identity"]["handle"] == "ann"
    assert record["space"]["handle"] == "main" and record["space"]["owner"] == "demo"
    assert record["owner"] == {"type": "user", "handle": "demo", "alias": "Demo User"}
    assert record["computedAt"] == (await api.get(vp)).body["computedAt"]
    assert org.body[0]["owner"]["type"] == "org"
    assert org.body[0]["voiceprint"]["identity"]["handle"] == "cat"
    # Records: sort computedAt only, no search; other users see neither list.
    assert (await api.get("/user/records/voiceprint", params={"search": "x"})).status == 400
    assert (await api.get("/user/records/voiceprint", params={"sort": "handle"})).status == 400
    assert (await api.get("/user/records/voiceprint", params={"sort": "-computedAt"})).status == 200
    other = await api.get("/orgs/acme/records/voiceprint", token=OTHER_KEY)
    others_own = await api.get("/user/records/voiceprint", token=OTHER_KEY)
    assert other.status == 403
    assert others_own.status == 200 and others_own.body == []


async def test_identity_verification(api: ApiClient, tmp_path: Path) -> None:
    vp = await _computable(api, tmp_path, "ann")
    probe = await audio(api, tmp_path, voice=3.0, silence=0.3)
    await api.post(f"{SPACE}/audios/{probe}:identify", json={"identity": "ann"})
    body = {"audio": probe, "identity": "ann", "voiceprint": "vp"}
    early = await api.post(f"{SPACE}/verifications/identity", json=body)
    assert early.status == 409  # the voiceprint is not computed yet
    await api.post(f"{vp}:compute")
    reply = await api.post(f"{SPACE}/verifications/identity", json={**body, "alias": "check"})
    assert reply.status == 201
    ver = reply.body
    assert ver["state"] == "performed" and 0.0 <= ver["score"] <= 1.0 and ver["score"] > 0.8
    assert ver["model"] == "phone/v1" and ver["audio"]["handle"] == probe
    assert ver["voiceprint"]["handle"] == "vp" and ver["performedAt"] is not None
    assert (await api.get(vp)).body["verifications"] == 1
    assert (await api.get(f"{SPACE}/identities/ann")).body["verifications"] == 1
    missing = await api.post(f"{SPACE}/verifications/identity", json={**body, "audio": "nope"})
    assert missing.status == 404
    invalid = await api.post(f"{SPACE}/verifications/identity", json={"audio": probe})
    assert invalid.status == 400


async def test_voiceprint_lists(api: ApiClient) -> None:
    await voiceprint(api, handle="b-vp")
    await voiceprint(api, handle="a-vp")
    listed = await api.get(f"{SPACE}/identities/ann/voiceprints", params={"sort": "handle"})
    assert [v["handle"] for v in listed.body] == ["a-vp", "b-vp"]
    by_compute = await api.get(f"{SPACE}/identities/ann/voiceprints", params={"sort": "computedAt"})
    assert by_compute.status == 200
    assert (await api.get(f"{SPACE}/identities/ghost/voiceprints")).status == 404
