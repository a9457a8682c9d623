"""The emulator's world without a socket: transitions, access, credits, expiry, snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from emulator.audio import Analysis
from emulator.config import default_world
from emulator.records import ApiError
from emulator.state import State


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _state(**kw: object) -> tuple[State, Clock]:
    clock = Clock()
    return State(default_world(), clock=clock, seed=1, **kw), clock  # type: ignore[arg-type]


def _status(exc: pytest.ExceptionInfo[ApiError]) -> int:
    return exc.value.status


def voice(seconds: float) -> Analysis:
    return Analysis(True, seconds + 0.5, 16000, seconds, 1, "WAV")


def test_session_expires_at_ttl() -> None:
    state, clock = _state(token_ttl=60)
    token = state.sign_in("demo", "demo-password")["token"]
    clock.now += timedelta(seconds=59)
    assert state.authenticate(token).handle == "demo"
    clock.now += timedelta(seconds=1)
    with pytest.raises(ApiError, match=r"token expired; sign in again") as exc:
        state.authenticate(token)
    assert _status(exc) == 401


def test_access_is_owner_or_org() -> None:
    state, _ = _state()
    demo, other = state.users["demo"], state.users["other"]
    assert state.space(demo, "acme", "onboarding").handle == "onboarding"
    with pytest.raises(
        ApiError, match=r"access denied: acme is neither you nor one of your organizations"
    ) as exc:
        state.space(other, "acme", "onboarding")
    assert _status(exc) == 403
    with pytest.raises(ApiError, match=r"space demo/nope not found") as exc:
        state.space(demo, "demo", "nope")
    assert _status(exc) == 404


def test_voiceprint_lifecycle_and_credit() -> None:
    state, _ = _state(credits=1)
    demo = state.users["demo"]
    sp = state.space(demo, "demo", "main")
    state.create_identity(sp, "ann", None)
    vp = state.create_voiceprint(sp, "ann", "phone/v1", 2, "vp")
    a = state.create_audio(sp, None, None, voice(3.0), 10)
    b = state.create_audio(sp, None, None, voice(1.0), 10)
    c = state.create_audio(sp, None, None, voice(2.25), 10)
    state.add_audio(sp, "ann", "vp", a.handle)
    with pytest.raises(
        ApiError, match=r"voice 1\.00 s is below the 2\.25 s this model needs per audio"
    ) as exc:
        state.add_audio(sp, "ann", "vp", b.handle)
    assert _status(exc) == 422
    assert vp.state == "notComputable"
    state.add_audio(sp, "ann", "vp", c.handle)
    assert vp.state == "computable"
    state.remove_audio(sp, "ann", "vp", c.handle)
    assert vp.state == "notComputable"
    state.add_audio(sp, "ann", "vp", c.handle)
    state.compute(sp, "ann", "vp", demo)
    assert vp.state == "computed" and state.credits_left("demo") == 0
    assert len(state.records) == 1
    vp2 = state.create_voiceprint(sp, "ann", "phone/v1", 1, "vp2")
    with pytest.raises(
        ApiError, match=r"voice 3\.00 s is below the 4\.50 s"
    ) as exc:  # minAudios 1: one audio holds all 4.5 s
        state.add_audio(sp, "ann", "vp2", a.handle)
    assert _status(exc) == 422
    big = state.create_audio(sp, None, None, voice(5.0), 10)
    state.add_audio(sp, "ann", "vp2", big.handle)
    with pytest.raises(ApiError, match=r"^Not enough credits$") as exc:
        state.compute(sp, "ann", "vp2", demo)
    assert _status(exc) == 429 and exc.value.message == "Not enough credits"
    assert vp2.state == "computable"


def test_snapshot_round_trip_keeps_everything() -> None:
    state, _ = _state(credits=5)
    demo = state.users["demo"]
    sp = state.space(demo, "demo", "main")
    state.create_identity(sp, "ann", "Ann")
    audio = state.create_audio(sp, "sha256:1", "ann", voice(5.0), 99)
    state.create_voiceprint(sp, "ann", "phone/v1", 1, "vp")
    state.add_audio(sp, "ann", "vp", audio.handle)
    state.compute(sp, "ann", "vp", demo)
    data = state.snapshot_json()

    restored, _ = _state(credits=5)
    restored.restore_json(data)
    rsp = restored.space(demo, "demo", "main")
    assert restored.identity_wire(rsp.identities["ann"]) == state.identity_wire(
        sp.identities["ann"]
    )
    assert restored.audio_wire(rsp, rsp.audios[audio.handle]) == state.audio_wire(sp, audio)
    assert restored.voiceprint_wire(rsp, rsp.voiceprints["ann/vp"]) == state.voiceprint_wire(
        sp, sp.voiceprints["ann/vp"]
    )
    assert [restored.record_wire(r) for r in restored.records] == [
        state.record_wire(r) for r in state.records
    ]
    assert restored.credits_left("demo") == 4
    # New handles after a restore do not collide with restored ones.
    fresh = restored.create_audio(rsp, None, None)
    assert fresh.handle != audio.handle
