"""Wire models: tolerant parsing of the contract's shapes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from emulator.rules import format_duration
from tests.api_calls import Verification, VerificationState
from worker.api import schemas as s


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT7.500S", 7.5),
        ("PT0S", 0.0),
        ("PT1M2.5S", 62.5),
        ("PT2H", 7200.0),
        ("P1DT1S", 86401.0),
        ("P0D", 0.0),
        ("PT0,5S", 0.5),
        (3.25, 3.25),
    ],
)
def test_durations_become_seconds(text: str | float, seconds: float) -> None:
    assert s.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["7.5", "P", "PT", "P1Y", "P1M", "PT1.5", "", "PTS"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"not an ISO-8601 duration"):
        s.parse_duration(text)


def test_the_servers_durations_round_trip() -> None:
    """What the server writes (the emulator's `format_duration`) reads back as the seconds."""
    assert format_duration(7.5) == "PT7.500S"
    assert s.parse_duration(format_duration(12.345)) == pytest.approx(12.345)


AUDIO = {
    "id": "0b4f…",
    "handle": "a-1",
    "alias": "sha256:abc",
    "state": "available",
    "duration": "PT12.000S",
    "voiceDuration": "PT7.500S",
    "sampleRate": 16000,
    "identity": {"handle": "bob", "alias": None},
    "voiceprints": 1,
    "verifications": 0,
    "createdAt": "2026-01-01T00:00:00.000000Z",
    "uploadedAt": "2026-01-01T00:00:01.000000Z",
    "somethingNew": {"nested": True},
}


def test_audio_full() -> None:
    audio = s.Audio.model_validate(AUDIO)
    assert audio.state is s.AudioState.AVAILABLE
    assert (audio.duration, audio.voice_duration, audio.sample_rate) == (12.0, 7.5, 16000)
    assert audio.identity == s.Ref(handle="bob")
    assert audio.uploaded_at is not None and audio.uploaded_at.tzinfo is not None


def test_audio_waiting_for_its_file_omits_measures() -> None:
    audio = s.Audio.model_validate({"handle": "a-2", "state": "avaitingFile", "identity": None})
    assert audio.state is s.AudioState.AVAITING_FILE
    assert audio.duration is None and audio.voice_duration is None and audio.identity is None


def test_audio_state_tolerates_the_typo_being_fixed() -> None:
    assert s.AudioState("awaitingFile") is s.AudioState.AVAITING_FILE
    with pytest.raises(
        ValidationError, match=r"Input should be 'avaitingFile', 'available' or 'notAvailable'"
    ):
        s.Audio.model_validate({"handle": "a", "state": "exploded"})


def test_voiceprint_model_as_string_or_object() -> None:
    base = {"handle": "vp", "state": "computable", "identity": {"handle": "bob"}}
    assert s.Voiceprint.model_validate({**base, "model": "phone/v1"}).model == "phone/v1"
    obj = {**base, "model": {"handle": "digital", "version": "v1"}}
    vp = s.Voiceprint.model_validate(obj)
    assert vp.model == "digital/v1" and vp.state is s.VoiceprintState.COMPUTABLE


def test_voiceprint_full() -> None:
    vp = s.Voiceprint.model_validate(
        {
            "id": "x",
            "handle": "main",
            "alias": None,
            "state": "computed",
            "model": "phone/v1",
            "identity": "bob",
            "totalDuration": "PT20.000S",
            "totalVoiceDuration": "PT9.000S",
            "minAudios": 2,
            "audios": 2,
            "verifications": 0,
            "createdAt": "2026-01-01T00:00:00.000000Z",
            "computedAt": None,
        }
    )
    assert vp.identity.handle == "bob" and vp.total_voice_duration == 9.0 and vp.min_audios == 2


def test_identity_user_and_model() -> None:
    ident = s.Identity.model_validate({"handle": "bob", "audios": 3, "createdAt": None})
    assert ident.audios == 3 and ident.voiceprints == 0
    user = s.User.model_validate({"handle": "me", "orgs": ["acme", {"handle": "other"}]})
    assert user.orgs == ["acme", "other"]
    model = s.Model.model_validate({"handle": "phone", "version": "v1", "requirements": {"x": 1}})
    assert model.name == "phone/v1" and not model.deprecated


def test_usage_record_with_nested_shapes_either_way() -> None:
    record = s.UsageRecord.model_validate(
        {
            "id": "r",
            "handle": "r-1",
            "actor": {"handle": "me"},
            "model": "phone/v1",
            "voiceprint": {"handle": "main", "state": "computed", "identity": "bob"},
            "space": {"handle": "sp", "owner": {"type": "org", "handle": "acme"}},
            "owner": {"type": "org", "handle": "acme", "alias": "Acme"},
            "computedAt": "2026-01-01T00:00:00.000000Z",
        }
    )
    assert record.voiceprint.identity == s.Ref(handle="bob")
    assert record.space is not None and record.space.owner is not None
    assert record.space.owner.type == "org"


def test_verification() -> None:
    v = Verification.model_validate(
        {"handle": "v1", "state": "performed", "score": 0.93, "audio": "a", "voiceprint": "vp"}
    )
    assert v.state == VerificationState.PERFORMED and v.score == 0.93


def test_token_response_hides_the_token() -> None:
    token = s.TokenResponse.model_validate({"token": "s3cr3t-tok", "expiresAt": None})
    assert token.token.get_secret_value() == "s3cr3t-tok"
    assert "s3cr3t-tok" not in repr(token) and "s3cr3t-tok" not in str(token)


def test_request_bodies_are_camel_case_without_nones() -> None:
    body = s.VoiceprintCreate(identity="bob", model="phone/v1", min_audios=3, handle="main")
    assert body.to_wire() == {
        "identity": "bob",
        "model": "phone/v1",
        "minAudios": 3,
        "handle": "main",
    }
    assert s.AudioCreate(alias="sha256:ab").to_wire() == {"alias": "sha256:ab"}
    creds = s.Credentials(handle="me", password="password1")  # type: ignore[arg-type]
    assert creds.to_wire() == {"handle": "me", "password": "password1"}
    assert "password1" not in repr(creds)
    with pytest.raises(
        ValidationError, match=r"min_audios\n  Input should be less than or equal to 20"
    ):
        s.VoiceprintCreate(identity="b", model="m", min_audios=21)


def test_voiceprint_patch_sends_only_the_fields_given() -> None:
    assert s.VoiceprintPatch(handle="main-2").to_wire() == {"handle": "main-2"}
    assert s.VoiceprintPatch(alias="old phone").to_wire() == {"alias": "old phone"}
    both = s.VoiceprintPatch(handle="main-2", alias="old phone").to_wire()
    assert both == {"handle": "main-2", "alias": "old phone"}
    with pytest.raises(ValueError, match=r"a voiceprint patch needs a handle, an alias or both"):
        s.VoiceprintPatch()


def test_page_knows_its_last() -> None:
    assert s.Page[s.Ref](items=[], page_current=2, page_total=2).is_last
    assert not s.Page[s.Ref](items=[s.Ref(handle="a")], page_current=1, page_total=2).is_last
    short = s.Page[s.Ref](items=[s.Ref(handle="a")], page_size=20)
    assert short.is_last
