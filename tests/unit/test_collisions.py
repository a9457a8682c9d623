"""Every 409 is followed by a read; the read says which collision it was (a table)."""

from __future__ import annotations

import pytest

from worker.enrollment import collisions
from worker.enrollment.observe import (
    ComputeAccepted,
    SawAudio,
    SawVoiceprint,
    SawVoiceprintAudios,
    Validated,
)
from worker.enrollment.view import ABSENT, AudioSeen, VoiceprintSeen

AWAITING = AudioSeen("h-aa", "avaitingFile")
AVAILABLE = AudioSeen("h-aa", "available", received=True)
OTHERS = AudioSeen("h-aa", "available", identity="eve")
VP = VoiceprintSeen("notComputable", "phone/v1", 1)
COMPUTABLE = VoiceprintSeen("computable", "phone/v1", 2, 9.0)
COMPUTED = VoiceprintSeen("computed", "phone/v1", 2, 9.0)


@pytest.mark.parametrize(
    ("audio", "collision", "observations"),
    [
        (
            AWAITING,
            "file received, still processing",
            [SawAudio("aa", AudioSeen("h-aa", "avaitingFile", received=True))],
        ),
        (AVAILABLE, "the audio already has its file (available)", [SawAudio("aa", AVAILABLE)]),
        (ABSENT, "the audio is gone", [SawAudio("aa", ABSENT)]),
    ],
)
def test_after_an_upload_409(audio, collision: str, observations: list) -> None:
    assert collisions.after_upload("aa", audio) == (collision, observations)


ADD = [
    ("already added, by content", ("aa",), VP, None, "already added"),
    ("computed meanwhile", (), COMPUTED, None, "the voiceprint is computed"),
    ("the voiceprint is gone", (), ABSENT, None, "the voiceprint is gone"),
    ("no file yet", (), VP, AWAITING, "the audio is not available yet"),
    ("other identity", (), VP, OTHERS, "the audio belongs to identity eve"),
    ("the audio is gone", (), VP, ABSENT, "the audio is gone"),
    ("nothing the reads explain", (), VP, AVAILABLE, "unexplained by the reads"),
]


@pytest.mark.parametrize(("name", "held", "vp", "audio", "collision"), ADD, ids=[c[0] for c in ADD])
def test_after_an_add_audio_409(name: str, held, vp, audio, collision: str) -> None:
    said, observations = collisions.after_add("aa", "cust-1", held, vp, audio)
    assert said.startswith(collision)
    # Whatever it was, what the reads showed is folded in: the rules decide from there.
    assert observations[:2] == [SawVoiceprintAudios(held), SawVoiceprint(vp)]
    if audio is not None:
        assert observations[2:] == [SawAudio("aa", audio)]


@pytest.mark.parametrize(
    ("vp", "ours", "collision", "observations"),
    [
        (
            COMPUTED,
            True,
            "already computed by our earlier attempt",
            [ComputeAccepted(ours=True), Validated(COMPUTED)],
        ),
        (COMPUTED, False, "already computed by someone else", [SawVoiceprint(COMPUTED)]),
        (
            COMPUTABLE,
            True,
            "a compute is in progress",
            [ComputeAccepted(ours=True), SawVoiceprint(COMPUTABLE)],
        ),
        (
            COMPUTABLE,
            False,
            "a compute is in progress",
            [ComputeAccepted(ours=False), SawVoiceprint(COMPUTABLE)],
        ),
        (VP, False, "not computable", [SawVoiceprint(VP)]),
        (ABSENT, False, "the voiceprint is gone", [SawVoiceprint(ABSENT)]),
    ],
)
def test_after_a_compute_409(vp, ours: bool, collision: str, observations: list) -> None:
    assert collisions.after_compute(vp, ours=ours) == (collision, observations)


def test_after_a_create_voiceprint_409() -> None:
    assert collisions.after_create_voiceprint(VP) == ("the voiceprint exists", [SawVoiceprint(VP)])
    said, _ = collisions.after_create_voiceprint(ABSENT)
    assert said.startswith("unexplained")
