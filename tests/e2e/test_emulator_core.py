"""Emulator over real sockets: auth, the caller, access control, identities, models, stats."""

from __future__ import annotations

from datetime import datetime

from tests.emulator_harness import OTHER_KEY, EmulatorHandle, running_emulator
from tests.fakeclock import FakeClock

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


async def test_every_api_call_needs_a_valid_bearer_token(emulator: EmulatorHandle) -> None:
    async with emulator.client() as api:
        missing = await api.get("/user", token=None)
        wrong = await api.get("/user", token="nope")
        basic = await api.get("/user", token=None, headers={"Authorization": "Basic ZGVtbw=="})
        ok = await api.get("/user")
    for reply in (missing, wrong, basic):
        assert reply.status == 401
        assert isinstance(reply.body["message"], str) and reply.body["message"]
    assert ok.status == 200
    assert ok.body == {"handle": "demo", "alias": "Demo User", "orgs": ["acme"]}


async def test_other_user_is_not_in_acme(emulator: EmulatorHandle) -> None:
    async with emulator.client(OTHER_KEY) as api:
        me = await api.get("/user")
    assert me.body["handle"] == "other"
    assert me.body["orgs"] == []


async def test_credentials_give_a_session_token_with_times(emulator: EmulatorHandle) -> None:
    async with emulator.client(None) as api:
        reply = await api.post(
            "/auth/credentials", json={"handle": "demo", "password": "demo-password"}
        )
        assert reply.status == 200
        issued = datetime.strptime(reply.body["issuedAt"], TIME_FORMAT)
        expires = datetime.strptime(reply.body["expiresAt"], TIME_FORMAT)
        assert (expires - issued).total_seconds() == 3600
        me = await api.get("/user", token=reply.body["token"])
    assert me.status == 200 and me.body["handle"] == "demo"


async def test_wrong_credentials_are_401_and_malformed_are_400(emulator: EmulatorHandle) -> None:
    async with emulator.client(None) as api:
        wrong = await api.post(
            "/auth/credentials", json={"handle": "demo", "password": "wrong-password"}
        )
        no_password_user = await api.post(
            "/auth/credentials", json={"handle": "other", "password": "whatever-1"}
        )
        short = await api.post("/auth/credentials", json={"handle": "demo", "password": "short"})
        long_handle = await api.post(
            "/auth/credentials", json={"handle": "d" * 51, "password": "demo-password"}
        )
        not_json = await api.post("/auth/credentials", data=b"handle=demo")
    assert wrong.status == 401 and no_password_user.status == 401
    assert short.status == 400 and "password" in short.body["message"]
    assert long_handle.status == 400
    assert not_json.status == 400


async def test_session_tokens_expire_after_token_ttl() -> None:
    clock = FakeClock()  # the emulator's time: moved by the test, not slept through
    async with running_emulator(token_ttl=0.3, clock=clock.utc) as emu, emu.client(None) as api:
        signed = await api.post(
            "/auth/credentials", json={"handle": "demo", "password": "demo-password"}
        )
        token = signed.body["token"]
        assert (await api.get("/user", token=token)).status == 200
        clock.advance(0.29)
        assert (await api.get("/user", token=token)).status == 200  # not yet
        clock.advance(0.02)
        expired = await api.get("/user", token=token)
        # API keys do not expire.
        key = await api.get("/user", token="demo-key")
    assert expired.status == 401
    assert "expired" in expired.body["message"]
    assert key.status == 200


async def test_spaces_of_others_are_403_and_unknown_own_spaces_404(
    emulator: EmulatorHandle,
) -> None:
    async with emulator.client(OTHER_KEY) as other, emulator.client() as demo:
        other_in_acme = await other.get("/spaces/acme/onboarding/identities")
        other_create = await other.post("/spaces/acme/onboarding/identities", json={"handle": "x"})
        demo_in_other = await demo.get("/spaces/other/private/identities")
        demo_in_acme = await demo.get("/spaces/acme/onboarding/identities")
        other_own = await other.get("/spaces/other/private/identities")
        unknown_space = await demo.get("/spaces/demo/nope/identities")
        unknown_owner = await demo.get("/spaces/nobody/main/identities")
    assert other_in_acme.status == 403 and "access denied" in other_in_acme.body["message"]
    assert other_create.status == 403
    assert demo_in_other.status == 403
    assert demo_in_acme.status == 200
    assert other_own.status == 200
    assert unknown_space.status == 404
    assert unknown_owner.status == 403


async def test_identity_create_get_and_duplicate(emulator: EmulatorHandle) -> None:
    async with emulator.client() as api:
        created = await api.post(
            "/spaces/demo/main/identities", json={"handle": "alice-1", "alias": "Alice"}
        )
        again = await api.post("/spaces/demo/main/identities", json={"handle": "alice-1"})
        fetched = await api.get("/spaces/demo/main/identities/alice-1")
        missing = await api.get("/spaces/demo/main/identities/bob")
        # Handles are unique within a space only.
        elsewhere = await api.post("/spaces/acme/onboarding/identities", json={"handle": "alice-1"})
    assert created.status == 201
    body = created.body
    assert set(body) == {
        "id",
        "handle",
        "alias",
        "audios",
        "voiceprints",
        "verifications",
        "createdAt",
    }
    assert body["handle"] == "alice-1" and body["alias"] == "Alice"
    assert body["audios"] == body["voiceprints"] == body["verifications"] == 0
    datetime.strptime(body["createdAt"], TIME_FORMAT)
    assert again.status == 409 and "already exists" in again.body["message"]
    assert fetched.status == 200 and fetched.body == body
    assert missing.status == 404 and "bob" in missing.body["message"]
    assert elsewhere.status == 201


async def test_handles_and_aliases_are_validated(emulator: EmulatorHandle) -> None:
    bad_handles = ["", "Alice", "a_b", "-a", "a-", "a--b", "a b", "é", "a" * 51, 7, None]
    async with emulator.client() as api:
        for handle in bad_handles:
            reply = await api.post("/spaces/demo/main/identities", json={"handle": handle})
            assert reply.status == 400, handle
            assert reply.body["message"]
        for alias in ["", "x" * 101, 5]:
            reply = await api.post(
                "/spaces/demo/main/identities", json={"handle": "ok", "alias": alias}
            )
            assert reply.status == 400, alias
        good = [
            await api.post("/spaces/demo/main/identities", json={"handle": h, "alias": a})
            for h, a in [("a", None), ("a1-b2-c3", "x" * 100), ("9" * 50, "Ünïcode ok")]
        ]
    assert [r.status for r in good] == [201, 201, 201]


async def test_models_table(emulator: EmulatorHandle) -> None:
    async with emulator.client() as api:
        reply = await api.get("/models")
        anonymous = await api.get("/models", token=None)
    assert reply.status == 200
    models = {f"{m['handle']}/{m['version']}": m for m in reply.body}
    assert set(models) == {"default/v1", "phone/v1", "digital/v1"}
    assert models["default/v1"]["deprecated"] is True
    assert models["phone/v1"]["deprecated"] is False
    assert models["digital/v1"]["requirements"]["minSampleRate"] == 16000
    assert models["phone/v1"]["requirements"]["minSampleRate"] == 8000
    assert models["phone/v1"]["requirements"]["maxDuration"] == "PT120.000S"
    assert anonymous.status == 401


async def test_unknown_endpoints_answer_json_404(emulator: EmulatorHandle) -> None:
    async with emulator.client() as api:
        reply = await api.get("/nothing/here")
        outside = await api.get("/../v2/user")
    assert reply.status == 404 and reply.body["message"]
    assert outside.status == 404


async def test_stats_count_requests_by_status_and_route_template(
    emulator: EmulatorHandle,
) -> None:
    async with emulator.client() as api:
        await api.post("/spaces/demo/main/identities", json={"handle": "s1"})
        await api.post("/spaces/demo/main/identities", json={"handle": "s1"})
        await api.get("/spaces/demo/main/identities/s1")
        await api.get("/user", token=None)
    stats = await emulator.stats()
    assert stats["requests"]["total"] == 4
    assert stats["requests"]["by_status"] == {"201": 1, "409": 1, "200": 1, "401": 1}
    by_route = stats["requests"]["by_route"]
    assert by_route["POST /spaces/{owner}/{space}/identities"] == 2
    assert by_route["GET /spaces/{owner}/{space}/identities/{identity}"] == 1
    assert by_route["GET /user"] == 1
    assert stats["created"] == {"identities": 1, "audios": 0, "voiceprints": 0, "computes": 0}
    assert stats["conflicts"] == 1
    assert stats["retry_after_violations"] == 0
    reset = await emulator.reset_stats()
    assert reset["requests"]["total"] == 0
