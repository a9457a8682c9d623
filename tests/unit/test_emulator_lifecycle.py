"""The emulator's voiceprint rename and delete without a socket: what changes, what stays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from emulator.audio import Analysis
from emulator.cli import build_parser, options_from_argv
from emulator.config import default_world
from emulator.records import ApiError, Space
from emulator.state import State


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def voice(seconds: float) -> Analysis:
    return Analysis(True, seconds + 0.5, 16000, seconds, 1, "WAV")


def computed_world(**kw: object) -> tuple[State, Space, str, Clock]:
    """User demo's space with identity ann, whose voiceprint `vp` is computed from one audio,
    which also has a verification against it; the audio's handle."""
    clock = Clock()
    state = State(default_world(), clock=clock, seed=1, **kw)  # type: ignore[arg-type]
    demo = state.users["demo"]
    sp = state.space(demo, "demo", "main")
    state.create_identity(sp, "ann", None)
    audio = state.create_audio(sp, None, "ann", voice(5.0), 10)
    state.create_voiceprint(sp, "ann", "phone/v1", 1, "vp")
    state.add_audio(sp, "ann", "vp", audio.handle)
    state.compute(sp, "ann", "vp", demo)
    return state, sp, audio.handle, clock


def test_rename_keeps_the_voiceprint_and_moves_its_handle() -> None:
    state, sp, audio, _ = computed_world()
    before = state.voiceprint_wire(sp, state.voiceprint(sp, "ann", "vp"))
    ver = state.create_verification(sp, audio, "ann", "vp", None)
    renamed = state.rename_voiceprint(sp, "ann", "vp", new_handle="vp-old", alias="retired")
    after = state.voiceprint_wire(sp, renamed)
    assert after["handle"] == "vp-old" and after["alias"] == "retired"
    same = ("id", "state", "model", "audios", "computedAt", "createdAt", "totalVoiceDuration")
    assert {k: after[k] for k in same} == {k: before[k] for k in same}
    assert state.voiceprint(sp, "ann", "vp-old") is renamed
    with pytest.raises(ApiError, match=r"voiceprint vp not found for identity ann") as exc:
        state.voiceprint(sp, "ann", "vp")
    assert exc.value.status == 404
    assert state.verification_wire(sp, ver)["voiceprint"]["handle"] == "vp-old"
    # The bill keeps the handle the voiceprint had when it was computed.
    assert [r.voiceprint["handle"] for r in state.records] == ["vp"]
    assert sp.identities["ann"].voiceprints == 1


def test_rename_refusals_and_no_ops() -> None:
    state, sp, _, _ = computed_world()
    state.create_voiceprint(sp, "ann", "phone/v1", 1, "other")
    cases = [
        ({"new_handle": "other"}, 409, r"voiceprint other already exists for identity ann"),
        ({"new_handle": "Not-Valid"}, 400, r"handle 'Not-Valid' is invalid"),
        ({"new_handle": None}, 400, r"handle must be a string"),
        ({"alias": "x" * 101}, 400, r"alias must be 1–100 characters, got 101"),
    ]
    for change, status, message in cases:
        with pytest.raises(ApiError, match=message) as exc:
            state.rename_voiceprint(sp, "ann", "vp", **change)
        assert exc.value.status == status
    with pytest.raises(ApiError, match=r"voiceprint nope not found") as exc:
        state.rename_voiceprint(sp, "ann", "nope", new_handle="fresh")
    assert exc.value.status == 404
    vp = state.rename_voiceprint(sp, "ann", "vp", new_handle="vp")  # its own handle: no-op
    assert vp.handle == "vp" and state.voiceprint(sp, "ann", "vp") is vp
    assert state.rename_voiceprint(sp, "ann", "vp", alias="a").alias == "a"
    assert state.rename_voiceprint(sp, "ann", "vp", alias=None).alias is None  # null clears


def test_delete_keeps_audios_and_records_and_counts_down() -> None:
    state, sp, audio, _ = computed_world()
    assert sp.audios[audio].voiceprints == 1 and sp.identities["ann"].voiceprints == 1
    state.delete_voiceprint(sp, "ann", "vp")
    assert "ann/vp" not in sp.voiceprints
    assert sp.audios[audio].voiceprints == 0 and sp.audios[audio].state == "available"
    assert sp.identities["ann"].voiceprints == 0 and sp.identities["ann"].audios == 1
    assert len(state.records) == 1
    with pytest.raises(ApiError, match=r"voiceprint vp not found for identity ann") as exc:
        state.delete_voiceprint(sp, "ann", "vp")
    assert exc.value.status == 404
    # The handle is free again: a new voiceprint may take it and the same audio.
    state.create_voiceprint(sp, "ann", "phone/v1", 1, "vp")
    state.add_audio(sp, "ann", "vp", audio)
    assert sp.audios[audio].voiceprints == 1 and sp.identities["ann"].voiceprints == 1


def test_a_pending_compute_refuses_rename_and_delete() -> None:
    """A delayed compute was charged and writes its record under the voiceprint's key."""
    clock = Clock()
    state = State(default_world(), clock=clock, seed=1, compute_delay_ms=1000)
    demo = state.users["demo"]
    sp = state.space(demo, "demo", "main")
    state.create_identity(sp, "ann", None)
    audio = state.create_audio(sp, None, "ann", voice(5.0), 10)
    state.create_voiceprint(sp, "ann", "phone/v1", 1, "vp")
    state.add_audio(sp, "ann", "vp", audio.handle)
    state.compute(sp, "ann", "vp", demo)
    for change in (
        lambda: state.rename_voiceprint(sp, "ann", "vp", new_handle="vp-2"),
        lambda: state.delete_voiceprint(sp, "ann", "vp"),
    ):
        with pytest.raises(ApiError, match=r"voiceprint vp is being computed") as exc:
            change()
        assert exc.value.status == 409
    clock.now += timedelta(seconds=2)
    state.settle()
    assert len(state.records) == 1
    state.rename_voiceprint(sp, "ann", "vp", new_handle="vp-2")
    state.delete_voiceprint(sp, "ann", "vp-2")
    assert sp.voiceprints == {}


def test_snapshot_keeps_a_rename_and_a_delete() -> None:
    state, sp, audio, _ = computed_world()
    state.create_voiceprint(sp, "ann", "phone/v1", 1, "gone")
    state.rename_voiceprint(sp, "ann", "vp", new_handle="vp-old")
    state.delete_voiceprint(sp, "ann", "gone")
    restored = State(default_world(), seed=1)
    restored.restore_json(state.snapshot_json())
    rsp = restored.space(restored.users["demo"], "demo", "main")
    assert sorted(rsp.voiceprints) == ["ann/vp-old"]
    assert rsp.identities["ann"].voiceprints == 1 and rsp.audios[audio].voiceprints == 1


def test_the_switches_are_flags_and_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EMULATOR_NO_VOICEPRINT_RENAME", "EMULATOR_NO_VOICEPRINT_DELETE"):
        monkeypatch.delenv(name, raising=False)
    off = options_from_argv([])
    assert not off.no_voiceprint_rename and not off.no_voiceprint_delete
    on = options_from_argv(["--no-voiceprint-rename", "--no-voiceprint-delete"])
    assert on.no_voiceprint_rename and on.no_voiceprint_delete
    monkeypatch.setenv("EMULATOR_NO_VOICEPRINT_DELETE", "1")
    from_env = options_from_argv([])
    assert from_env.no_voiceprint_delete and not from_env.no_voiceprint_rename
    with pytest.raises(SystemExit):  # a switch takes no value
        build_parser().parse_args(["--no-voiceprint-rename", "yes"])
    assert "--no-voiceprint-delete" in build_parser().format_help()
