"""What each refusal of the API means for the action that got it (a table, design.md §4/§5)."""

from __future__ import annotations

import pytest

from worker.api import errors
from worker.audio.files import AudioUnreadable
from worker.enrollment.actions import (
    AddAudio,
    CreateAudio,
    CreateVoiceprint,
    EnsureIdentity,
    GetVoiceprint,
    UploadFile,
)
from worker.enrollment.answers import Fatal, meaning
from worker.enrollment.collisions import add_needs_audio_read, compute_may_be_ours, ours_took_effect
from worker.enrollment.observe import (
    AudioOutcomeUnknown,
    ComputeAccepted,
    CreditsExhausted,
    IdentityReady,
    Rejected,
    SawVoiceprint,
    Transient,
)
from worker.enrollment.view import ABSENT, Done, VoiceprintSeen
from worker.journal.records import Outcome, Step


def failed(step: Step, reason: str, status: int | None = None) -> list[Rejected]:
    return [Rejected(Done(Outcome.FAILED, step, reason, status))]


SERVER = errors.ServerError("busy", status=503, method="GET", route="/v")
RATE = errors.RateLimited("slow down", retry_after=1.0)
NOT_SENT = errors.NotSent("connection refused")
UNKNOWN = errors.OutcomeUnknown("read timeout", kind="timeout")
CREDITS = errors.CreditsExhausted("Not enough credits")
CONFLICT = errors.Conflict("already exists")
NOT_FOUND = errors.NotFound("no such identity")
UNPROCESSABLE = errors.Unprocessable("too short for the model")
TOO_LARGE = errors.PayloadTooLarge("file too large")
INVALID = errors.InvalidResponse("not JSON")


CASES = [
    ("credits on a read", GetVoiceprint(), CREDITS,
     [CreditsExhausted(Step.VOICEPRINT, "credits exhausted: Not enough credits")]),
    ("credits on an audio create", CreateAudio("aa"), CREDITS,
     [CreditsExhausted(Step.AUDIO, "credits exhausted: Not enough credits")]),
    ("401 anywhere", AddAudio("aa", "h-aa"), errors.Unauthorized("bad key"),
     Fatal("HTTP 401: bad key")),
    ("5xx", GetVoiceprint(), SERVER, [Transient(Step.VOICEPRINT, "GET /v: HTTP 503: busy")]),
    ("429 with Retry-After", CreateVoiceprint(), RATE,
     [Transient(Step.CREATE_VOICEPRINT, "HTTP 429: slow down")]),
    ("not sent", UploadFile("aa", "h-aa"), NOT_SENT,
     [Transient(Step.UPLOAD, "not sent (connection refused)")]),
    ("unknown outcome of an audio create", CreateAudio("aa"), UNKNOWN,
     [AudioOutcomeUnknown("aa", "outcome unknown (timeout): read timeout")]),
    ("unknown outcome elsewhere", CreateVoiceprint(), UNKNOWN,
     [Transient(Step.CREATE_VOICEPRINT, "outcome unknown (timeout): read timeout")]),
    ("409 on create identity", EnsureIdentity(create=True), CONFLICT, [IdentityReady()]),
    ("409 on get identity", EnsureIdentity(create=False), CONFLICT,
     failed(Step.IDENTITY, "already exists", 409)),
    ("404 on get identity", EnsureIdentity(create=False), NOT_FOUND,
     failed(Step.IDENTITY, "identity 'alice' does not exist and createIdentity is false", 404)),
    ("404 on create identity", EnsureIdentity(create=True), NOT_FOUND,
     failed(Step.IDENTITY, "no such identity", 404)),
    ("422 on add audio", AddAudio("aa", "h-aa"), UNPROCESSABLE,
     failed(Step.ADD_AUDIO, "a.wav: too short for the model", 422)),
    ("422 elsewhere", CreateAudio("aa"), UNPROCESSABLE,
     failed(Step.AUDIO, "too short for the model", 422)),
    ("413", UploadFile("aa", "h-aa"), TOO_LARGE, failed(Step.UPLOAD, "file too large", 413)),
    ("an answer that is no answer", GetVoiceprint(), INVALID,
     failed(Step.VOICEPRINT, "not JSON")),
    ("the file changed before its upload", UploadFile("aa", "h-aa"), AudioUnreadable("changed"),
     failed(Step.UPLOAD, "a.wav: changed")),
    ("the file changed before an inline create", CreateAudio("aa"), AudioUnreadable("gone"),
     failed(Step.AUDIO, "file: gone")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("action", "exc", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_answer_means_one_thing(action: object, exc: Exception, expected: object) -> None:
    assert meaning(action, exc, identity="alice", file_name="a.wav") == expected


COMPUTABLE = VoiceprintSeen("computable", "phone/v1", 1)
COMPUTED = VoiceprintSeen("computed", "phone/v1", 2)


@pytest.mark.parametrize(
    ("held", "voiceprint", "needs_read"),
    [
        (("aa",), COMPUTABLE, False),  # already added: the listing explains it
        ((), COMPUTED, False),  # computed meanwhile: the voiceprint explains it
        ((), ABSENT, False),  # the voiceprint is gone
        ((), COMPUTABLE, True),  # only the audio can say (not available yet, other identity)
    ],
)
def test_an_add_409_reads_the_audio_only_when_the_voiceprint_leaves_it_unexplained(
    held: tuple[str, ...], voiceprint: VoiceprintSeen, needs_read: bool
) -> None:
    assert add_needs_audio_read("aa", held, voiceprint) is needs_read


@pytest.mark.parametrize(
    ("after_unknown", "sent_before", "ours"),
    [(False, False, False), (True, False, True), (False, True, True), (True, True, True)],
)
def test_a_compute_409_may_be_ours_after_a_lost_answer_or_an_earlier_send(
    after_unknown: bool, sent_before: bool, ours: bool
) -> None:
    assert compute_may_be_ours(after_unknown_outcome=after_unknown, sent_before=sent_before) is ours


def test_only_an_accepted_compute_of_ours_took_effect() -> None:
    assert ours_took_effect([ComputeAccepted(ours=True), SawVoiceprint(COMPUTED)])
    assert not ours_took_effect([ComputeAccepted(ours=False), SawVoiceprint(COMPUTED)])
    assert not ours_took_effect([SawVoiceprint(COMPUTED)])
