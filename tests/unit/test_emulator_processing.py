"""The emulator's asynchronous modes without a socket: a moved clock lets every delay pass.

`--file-delay-ms` keeps a received file's audio in `avaitingFile`, `--compute-delay-ms` keeps a
computed voiceprint `computable`; the collisions inside those windows are 409s with messages
that say which collision it is (api-contract.md §5).
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta

import pytest

from emulator.audio import Analysis
from emulator.cli import build_parser, options_from_argv
from emulator.config import default_world
from emulator.pagination import PageRequest, parse_page_request
from emulator.ratelimit import retry_after_header
from emulator.records import ApiError, Space
from emulator.state import State

FILE_MS, COMPUTE_MS = 400, 700


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, ms: float) -> None:
        self.now += timedelta(milliseconds=ms)


def voice(seconds: float) -> Analysis:
    return Analysis(True, seconds + 0.5, 16000, seconds, 1, "WAV")


def world(**kw: float) -> tuple[State, Clock, Space]:
    clock = Clock()
    state = State(default_world(), clock=clock, seed=1, **kw)  # type: ignore[arg-type]
    sp = state.space(state.users["demo"], "demo", "main")
    state.create_identity(sp, "ann", None)
    return state, clock, sp


def read(state: State, sp: Space) -> Space:
    """A request reads the world again (this is when due work settles)."""
    return state.space(state.users["demo"], sp.owner, sp.handle)


def _all() -> PageRequest:
    return parse_page_request({}, ["computedAt"], searchable=False)


def conflict_message(call: object, *args: object) -> str:
    with pytest.raises(ApiError) as info:
        call(*args)  # type: ignore[operator]
    assert info.value.status == 409
    return info.value.message


def test_a_received_file_reads_avaiting_file_until_the_delay_has_passed() -> None:
    state, clock, sp = world(file_delay_ms=FILE_MS)
    raw = state.create_audio(sp, "sha256:a", "ann")
    state.attach_file(sp, raw.handle, voice(5.0), 10)
    inline = state.create_audio(sp, "sha256:b", "ann", voice(5.0), 10)
    state.create_voiceprint(sp, "ann", "phone/v1", 1, "vp")
    for audio in (raw, inline):
        wire = state.audio_wire(read(state, sp), audio)
        assert wire["state"] == "avaitingFile" and wire["duration"] is None
        message = conflict_message(state.add_audio, sp, "ann", "vp", audio.handle)
        assert "still being processed" in message
        # A second file for an audio that already got one is a 409 even while processing.
        assert "already has a file" in conflict_message(
            state.attach_file, sp, audio.handle, voice(5.0), 10
        )
    clock.advance(FILE_MS - 1)
    assert state.audio_wire(read(state, sp), raw)["state"] == "avaitingFile"
    clock.advance(1)
    assert state.audio_wire(read(state, sp), raw)["state"] == "available"
    assert state.audio_wire(sp, inline)["duration"] == "PT5.500S"
    assert state.add_audio(sp, "ann", "vp", raw.handle).state == "computable"


def test_an_undecodable_file_becomes_not_available_after_the_delay() -> None:
    state, clock, sp = world(file_delay_ms=FILE_MS)
    audio = state.create_audio(sp, None, None, Analysis.undecodable(), 3)
    assert audio.state == "avaitingFile"
    clock.advance(FILE_MS)
    assert state.audio_wire(read(state, sp), audio)["state"] == "notAvailable"


def test_compute_answers_computable_and_settles_later_with_one_record() -> None:
    state, clock, sp = world(compute_delay_ms=COMPUTE_MS, credits=1)
    demo = state.users["demo"]
    state.create_voiceprint(sp, "ann", "phone/v1", 1, "vp")
    audio = state.create_audio(sp, None, "ann", voice(5.0), 10)
    state.add_audio(sp, "ann", "vp", audio.handle)
    answered = state.compute(sp, "ann", "vp", demo)
    assert answered.state == "computable" and answered.computed_at is None
    assert state.credits_left("demo") == 0  # charged when accepted: no overdraft meanwhile
    assert "being computed" in conflict_message(state.compute, sp, "ann", "vp", demo)
    other = state.create_audio(sp, None, "ann", voice(5.0), 10)
    assert "being computed" in conflict_message(state.add_audio, sp, "ann", "vp", other.handle)
    assert "being computed" in conflict_message(state.remove_audio, sp, "ann", "vp", audio.handle)
    assert state.user_records(demo, _all()).items == []
    clock.advance(COMPUTE_MS)
    vp = state.voiceprint(read(state, sp), "ann", "vp")
    assert vp.state == "computed" and vp.computed_at == clock.now
    records = state.user_records(demo, _all()).items
    assert [r.voiceprint["handle"] for r in records] == ["vp"]
    assert "already computed" in conflict_message(state.compute, sp, "ann", "vp", demo)


def test_pending_work_survives_a_snapshot_and_settles_after_restore() -> None:
    state, clock, sp = world(file_delay_ms=FILE_MS, compute_delay_ms=COMPUTE_MS)
    state.create_voiceprint(sp, "ann", "phone/v1", 1, "vp")
    ready = state.create_audio(sp, None, "ann", voice(5.0), 10)
    clock.advance(FILE_MS)
    state.add_audio(read(state, sp), "ann", "vp", ready.handle)
    state.compute(sp, "ann", "vp", state.users["demo"])
    pending = state.create_audio(sp, None, "ann", voice(5.0), 10)
    data = state.snapshot_json()

    again = State(default_world(), clock=clock, seed=1, file_delay_ms=FILE_MS)
    again.restore_json(data)
    sp2 = read(again, sp)
    assert sp2.audios[pending.handle].state == "avaitingFile"
    assert sp2.voiceprints["ann/vp"].state == "computable"
    clock.advance(COMPUTE_MS)
    sp2 = read(again, sp)
    assert sp2.audios[pending.handle].state == "available"
    assert sp2.voiceprints["ann/vp"].state == "computed" and len(again.records) == 1


def test_without_delays_everything_settles_inside_the_request() -> None:
    state, _, sp = world()
    state.create_voiceprint(sp, "ann", "phone/v1", 1, "vp")
    audio = state.create_audio(sp, None, "ann", voice(5.0), 10)
    assert audio.state == "available"
    state.add_audio(sp, "ann", "vp", audio.handle)
    assert state.compute(sp, "ann", "vp", state.users["demo"]).state == "computed"
    assert len(state.records) == 1


@pytest.mark.parametrize(
    ("fmt", "seconds", "wall", "expected"),
    [
        ("seconds", 3, 1_767_225_600.0, "3"),
        ("http-date", 3, 1_767_225_600.0, "Thu, 01 Jan 2026 00:00:03 GMT"),
        # A fraction of a second is rounded up: a client waiting for the date is never early.
        ("http-date", 1, 1_767_225_600.2, "Thu, 01 Jan 2026 00:00:02 GMT"),
    ],
)
def test_retry_after_header_formats(fmt: str, seconds: int, wall: float, expected: str) -> None:
    header = retry_after_header(seconds, fmt, wall)  # type: ignore[arg-type]
    assert header == expected
    if fmt == "http-date":
        assert email.utils.parsedate_to_datetime(header).timestamp() >= wall + seconds


def test_help_documents_every_mode_and_the_retry_after_choices() -> None:
    parser = build_parser()
    text = parser.format_help()
    for flag in ("--file-delay-ms", "--compute-delay-ms", "--retry-after-format"):
        assert flag in text
    assert "async compute" in text and "seconds|http-date" in text
    assert options_from_argv(["--retry-after-format", "http-date"]).retry_after_format == (
        "http-date"
    )
    with pytest.raises(SystemExit, match="2"):
        parser.parse_args(["--retry-after-format", "rfc850"])
