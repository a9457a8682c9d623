"""Rows of the enrollment table the driver used to decide by itself: giving up on a step after
repeated transient failures, and what a 404 to an add means (design.md §4, §7)."""

from __future__ import annotations

import pytest

from worker.enrollment.actions import (
    AddAudio,
    CreateAudio,
    FindAudio,
    GetVoiceprint,
    UploadFile,
    action_key,
)
from worker.enrollment.observe import (
    AudioLost,
    AudioOutcomeUnknown,
    SawAudio,
    SawVoiceprint,
    Transient,
    advance,
)
from worker.enrollment.rules import decide
from worker.enrollment.view import (
    ABSENT,
    AddNotFound,
    AudioSeen,
    Done,
    Limits,
    Plan,
    View,
    VoiceprintSeen,
)
from worker.journal.records import Outcome, Step

PLAN = Plan("cust-1", "main", "phone/v1", 1, True, ("aa", "bb"))
AVAILABLE = {"aa": AudioSeen("h-aa", "available"), "bb": AudioSeen("h-bb", "available")}
BUSY = "GET /v: HTTP 503: busy"
TIMEOUT = "outcome unknown (timeout): read timeout"
START = View(plan=PLAN, identity_ready=True)
# Both audios available, the voiceprint holds "aa": the next action adds "bb".
ADDING = View(
    plan=PLAN,
    identity_ready=True,
    voiceprint=VoiceprintSeen("notComputable", "phone/v1", 1),
    audios=AVAILABLE,
    held=("aa",),
    listed=True,
)


def fold(start: View, steps: list) -> View:
    """Each entry is one action's observations (a list, or one observation)."""
    current = start
    for obs in steps:
        current = advance(
            current, action_key(decide(current)), obs if isinstance(obs, list) else [obs]
        )
    return current


def gave_up(step: Step, reason: str) -> Done:
    return Done(Outcome.FAILED, step, f"gave up after retries: {reason}")


GIVE_UP = [
    ("3 transient failures of a step: it is tried again",
     START, [Transient(Step.VOICEPRINT, BUSY)] * 3, GetVoiceprint()),
    ("the 4th transient failure of a step: failed, naming the step and the failure",
     START, [Transient(Step.VOICEPRINT, BUSY)] * 4, gave_up(Step.VOICEPRINT, BUSY)),
    ("the reason is the latest failure's",
     START, [*[Transient(Step.VOICEPRINT, BUSY)] * 3, Transient(Step.VOICEPRINT, "HTTP 502")],
     gave_up(Step.VOICEPRINT, "HTTP 502")),
    ("failures of different steps are counted apart",
     START, [*[Transient(Step.VOICEPRINT, BUSY)] * 3, *[Transient(Step.IDENTITY, BUSY)] * 3],
     GetVoiceprint()),
    ("the 4th unknown outcome of one file's create: failed at the audio step",
     View(plan=PLAN, identity_ready=True, voiceprint=ABSENT, audios={"aa": ABSENT}),
     [AudioOutcomeUnknown("aa", TIMEOUT), SawAudio("aa", ABSENT)] * 3
     + [AudioOutcomeUnknown("aa", TIMEOUT)],
     gave_up(Step.AUDIO, TIMEOUT)),
    ("3 unknown outcomes: the file's audio is looked up again",
     View(plan=PLAN, identity_ready=True, voiceprint=ABSENT, audios={"aa": ABSENT}),
     [AudioOutcomeUnknown("aa", TIMEOUT), SawAudio("aa", ABSENT)] * 2
     + [AudioOutcomeUnknown("aa", TIMEOUT)],
     FindAudio("aa")),
    ("the bound is Limits.max_attempts",
     View(plan=PLAN, identity_ready=True, limits=Limits(max_attempts=2)),
     [Transient(Step.VOICEPRINT, BUSY)] * 2, gave_up(Step.VOICEPRINT, BUSY)),
    ("giving up comes first, whatever the next action would have been",
     ADDING, [Transient(Step.UPLOAD, BUSY)] * 4, gave_up(Step.UPLOAD, BUSY)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("start", "steps", "expected"), [c[1:] for c in GIVE_UP], ids=[c[0] for c in GIVE_UP]
)
def test_repeated_transient_failures_of_a_step(start: View, steps: list, expected: object) -> None:
    assert decide(fold(start, steps)) == expected


def not_found(handle: str = "h-bb", *, gone: bool) -> AddNotFound:
    return AddNotFound("bb", handle, gone, "Audio not found")


LOST = AudioSeen("h-bb2", "available")
FAILED_404 = Done(Outcome.FAILED, Step.ADD_AUDIO, "Audio not found", 404)
FIND_LOST = FindAudio("bb", lost="h-bb", step=Step.ADD_AUDIO)

NOT_FOUND_AFTER_ADD = [
    ("the audio is still there: the voiceprint or identity is missing, failed as the server said",
     [not_found(gone=False)], FAILED_404),
    ("the audio is gone too: the server lost it; forget its handle and find the file's audio",
     [not_found(gone=True)], FIND_LOST),
    ("found again by its alias: that audio is added",
     [not_found(gone=True), [AudioLost("bb"), SawAudio("bb", LOST)]], AddAudio("bb", "h-bb2")),
    ("found nowhere: made again",
     [not_found(gone=True), [AudioLost("bb"), SawAudio("bb", ABSENT)]], CreateAudio("bb")),
    ("made again, its file not yet uploaded: uploaded",
     [not_found(gone=True), [AudioLost("bb"), SawAudio("bb", ABSENT)],
      SawAudio("bb", AudioSeen("h-bb3", "avaitingFile"))], UploadFile("bb", "h-bb3")),
    ("lost a second time: failed as the server said",
     [not_found(gone=True), [AudioLost("bb"), SawAudio("bb", LOST)], not_found("h-bb2", gone=True)],
     FAILED_404),
    ("the find after a loss failed: the add's failure, the add is tried again",
     [not_found(gone=True), [AudioLost("bb"), Transient(Step.ADD_AUDIO, BUSY)]],
     AddAudio("bb", "h-bb")),
    ("... and its 404 then fails: the file was lost once already",
     [not_found(gone=True), [AudioLost("bb"), Transient(Step.ADD_AUDIO, BUSY)],
      not_found(gone=True)], FAILED_404),
]  # fmt: skip


@pytest.mark.parametrize(
    ("steps", "expected"),
    [c[1:] for c in NOT_FOUND_AFTER_ADD],
    ids=[c[0] for c in NOT_FOUND_AFTER_ADD],
)
def test_a_404_to_an_add(steps: list, expected: object) -> None:
    assert decide(ADDING) == AddAudio("bb", "h-bb")
    assert decide(fold(ADDING, steps)) == expected


def test_a_404_to_an_add_and_finding_the_audio_again_are_progress_not_stalls() -> None:
    after = fold(ADDING, [not_found(gone=True), [AudioLost("bb"), SawAudio("bb", LOST)]])
    assert after.stalls == () and after.lost == frozenset({"bb"}) and after.add_not_found is None


def test_a_voiceprint_gone_meanwhile_is_not_the_audio_lost() -> None:
    # The 404 named the audio's add, but the read says the audio exists: nothing is forgotten.
    after = fold(ADDING, [not_found(gone=False)])
    assert after.audios == AVAILABLE and after.lost == frozenset()
    assert decide(fold(after, [SawVoiceprint(ABSENT)])) == FAILED_404
