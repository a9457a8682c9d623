"""The customer's channel: manifest entries, what preflight decides, and the derived FLAC."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emulator.audio import analyze
from tests.audiogen import samples, write_audio, write_signal
from tests.manifests import collected, parse_manifest
from worker.audio.decode import AudioReader
from worker.audio.derive import (
    Derivation,
    derive_flac,
    derived_upload,
    plan_derivation,
    sweep_work_dir,
)
from worker.audio.files import AudioUnreadable
from worker.manifest.json import stream_json
from worker.manifest.models import ManifestDefaults
from worker.manifest.preflight import preflight_enrollment
from worker.manifest.retry import enrollment_json

RATE = 8000
STEREO = "stereo recording: name the customer's channel (channel 0 or 1)"
FOUR = "recording with 4 channels: name the customer's channel (channel 0 to 3)"
CUSTOMER_VOICE, AGENT_VOICE, LENGTH = 2.0, 5.0, 6.0


def call(path: Path, codec: str | None = "pcm_mulaw") -> Path:
    """A stereo call: the agent (5 s of 220 Hz) on channel 0, the customer (2 s, 330 Hz) on 1."""
    agent = samples(AGENT_VOICE, LENGTH - AGENT_VOICE, RATE)
    customer = samples(CUSTOMER_VOICE, LENGTH - CUSTOMER_VOICE, RATE, pitch=330.0)
    return write_signal(path, np.stack([agent, customer]), RATE, codec)


def defaults(root: Path, **kw: object) -> ManifestDefaults:
    return ManifestDefaults(audio_root=root, owner="demo", space="main", **kw)  # type: ignore[arg-type]


# --- manifest entries --------------------------------------------------------------------------


def test_an_audio_may_be_an_object_with_its_channel(tmp_path: Path) -> None:
    doc = {
        "identity": "ann",
        "minAudios": 2,
        "audios": ["a.wav", {"path": "calls/c1.wav", "channel": 1}, {"path": "b.wav"}],
    }
    parsed = collected(stream_json(json.dumps(doc), "one.json", defaults(tmp_path)))
    [e] = parsed.enrollments
    assert e.audio_names == ("a.wav", "calls/c1.wav", "b.wav")
    assert e.channels == (None, 1, None)
    out = enrollment_json(e, tmp_path)["audios"]
    assert out == ["a.wav", {"path": "calls/c1.wav", "channel": 1}, "b.wav"]  # retry manifest


def test_both_channels_of_one_call_are_two_audios_but_one_twice_is_refused(tmp_path: Path) -> None:
    two = {
        "identity": "ann",
        "audios": [{"path": "c.wav", "channel": 0}, {"path": "c.wav", "channel": 1}],
    }
    assert collected(stream_json(json.dumps(two), "j.json", defaults(tmp_path))).ok
    twice = {
        "identity": "ann",
        "audios": [{"path": "c.wav", "channel": 1}, {"path": "c.wav", "channel": 1}],
    }
    [problem] = collected(stream_json(json.dumps(twice), "j.json", defaults(tmp_path))).problems
    assert problem.reason == "listed twice (also audios[0])"


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (
            {"path": "c.wav", "channel": -1},
            "channel must be a whole number from 0 (the first channel)",
        ),
        ({"path": "c.wav", "channel": "left"}, "channel must be a whole number from 0"),
        ({"path": "c.wav", "channel": True}, "channel must be a whole number from 0"),
        ({"path": "c.wav", "chanel": 1}, 'unknown key "chanel" (an audio has path and channel)'),
        ({"channel": 1}, 'an audio object needs a "path"'),
        ({"path": 7}, "must be a path (text), or an object with path and channel"),
    ],
)
def test_bad_audio_objects_say_what_is_wrong(tmp_path: Path, entry: object, reason: str) -> None:
    doc = {"identity": "ann", "audios": [entry]}
    [problem] = collected(stream_json(json.dumps(doc), "j.json", defaults(tmp_path))).problems
    assert problem.field == "audios[0]" and problem.reason.startswith(reason)


def test_the_csv_channel_column(tmp_path: Path) -> None:
    text = "identity,audio,channel\nann,calls/c1.wav,1\nann,calls/c2.wav,\nbob,calls/c3.wav,x\n"
    parsed = parse_manifest(text.encode(), "calls.csv", defaults(tmp_path))
    [ann] = parsed.enrollments
    assert ann.channels == (1, None)
    [bob] = parsed.rejected
    assert bob.problems[0].reason.startswith("channel must be a whole number")
    assert bob.problems[0].place == "line 4"


# --- what preflight decides --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channels", "channel", "stereo", "accepted", "convert", "expected"),
    [
        (1, None, "channel", True, False, None),
        (1, 0, "channel", True, False, None),
        (1, 1, "channel", True, False, "channel 1 does not exist: the recording has 1 channel"),
        (2, None, "channel", True, False, STEREO),
        (4, None, "channel", True, False, FOUR),
        (2, 2, "channel", True, False, "channel 2 does not exist: the recording has 2 channels"),
        (2, 1, "channel", True, False, "channel 1 of 2 as mono FLAC"),
        (2, None, "downmix", True, False, "2 channels mixed as mono FLAC"),
        (2, 0, "downmix", True, False, "channel 0 of 2 as mono FLAC"),  # a named channel wins
        (1, None, "channel", False, False, None),  # preflight names the format problem
        (1, None, "channel", False, True, "converted from mp3, as mono FLAC"),
        (2, 1, "channel", False, True, "converted from mp3, channel 1 of 2 as mono FLAC"),
        (2, None, "channel", False, True, STEREO),
    ],
)  # fmt: skip
def test_plan_derivation(
    channels: int,
    channel: int | None,
    stereo: str,
    accepted: bool,
    convert: bool,
    expected: str | None,
) -> None:
    container, codec = ("wav", "pcm_mulaw") if accepted else ("mp3", "mp3")
    found = plan_derivation(
        sha256="ab" * 32, container=container, codec=codec, channels=channels,
        channel=channel, stereo=stereo, convert=convert,  # type: ignore[arg-type]
    )  # fmt: skip
    shown = found.describe() if isinstance(found, Derivation) else found
    assert shown == expected


def test_the_journal_key_names_source_channel_and_conversion() -> None:
    d = Derivation(
        source_sha256="ab" * 32, source_format="wav", source_channels=2, channel=1, converted=False
    )
    mix = d.model_copy(update={"channel": None})
    assert d.key == "ab" * 32 + ":ch1:flac-s16-mono" and mix.key.endswith(":mix:flac-s16-mono")


def test_preflight_refuses_a_stereo_call_without_a_channel_and_accepts_it_with_one(
    tmp_path: Path,
) -> None:
    call(tmp_path / "calls" / "c1.wav")
    doc = {
        "enrollments": [
            {"identity": "ann", "audios": ["calls/c1.wav"]},
            {"identity": "bob", "audios": [{"path": "calls/c1.wav", "channel": 1}]},
        ]
    }
    parsed = collected(stream_json(json.dumps(doc), "calls.json", defaults(tmp_path)))
    # voice_margin 1: the customer's 2 s are short for minAudios 1; the local check stays out.
    ann, bob = (
        preflight_enrollment(e, tmp_path, "calls.json", voice_margin=1.0)
        for e in parsed.enrollments
    )
    assert [str(p) for p in ann.problems] == [
        'calls.json enrollments[0]: audios[0] "calls/c1.wav": stereo recording: '
        "name the customer's channel (channel 0 or 1)"
    ]
    assert bob.ok and bob.derivations[0] is not None
    assert bob.derivations[0].describe() == "channel 1 of 2 as mono FLAC"
    mixed = preflight_enrollment(parsed.enrollments[0], tmp_path, "calls.json", stereo="downmix")
    assert mixed.ok and mixed.derivations[0] is not None and mixed.derivations[0].channel is None


def test_convert_lets_an_mp3_through_preflight(tmp_path: Path) -> None:
    write_audio(tmp_path / "a.mp3", 5.0, 0.0, RATE)
    doc = {"identity": "ann", "audios": ["a.mp3"]}
    [e] = collected(stream_json(json.dumps(doc), "j.json", defaults(tmp_path))).enrollments
    refused = preflight_enrollment(e, tmp_path, "j.json")
    assert refused.problems[0].reason.startswith("format mp3 is not accepted by the API")
    converted = preflight_enrollment(e, tmp_path, "j.json", convert=True)
    assert converted.ok and converted.derivations[0] is not None
    assert converted.derivations[0].converted


# --- the derived file --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "voice"), [(0, AGENT_VOICE), (1, CUSTOMER_VOICE), (None, AGENT_VOICE)]
)
def test_the_derived_flac_holds_that_channel_only(
    tmp_path: Path, channel: int | None, voice: float
) -> None:
    source = call(tmp_path / "c.wav")
    d = Derivation(
        source_sha256="0" * 64, source_format="wav", source_channels=2, channel=channel,
        converted=False,
    )  # fmt: skip
    with source.open("rb") as fh:
        path, sha, size = derive_flac(fh, d, tmp_path / "work")
    assert path.name == f"{sha}.flac" and path.stat().st_size == size
    with path.open("rb") as fh, AudioReader(fh) as reader:
        out = reader.count()
    assert (out.container, out.channels, out.sample_rate) == ("flac", 1, RATE)
    assert out.frames == LENGTH * RATE
    found = analyze(path)
    assert found.voice_duration == pytest.approx(voice, abs=0.1)
    assert [p.name for p in (tmp_path / "work").iterdir()] == [path.name]  # no temp file left
    with source.open("rb") as fh:
        assert derive_flac(fh, d, tmp_path / "again")[1] == sha  # same input, same bytes


# --- a derived upload across restarts ----------------------------------------------------------


def _derivation(channel: int | None = 1) -> Derivation:
    return Derivation(
        source_sha256="0" * 64, source_format="wav", source_channels=2, channel=channel,
        converted=False,
    )  # fmt: skip


def test_a_known_derivation_is_not_converted_until_its_file_is_needed(tmp_path: Path) -> None:
    source = call(tmp_path / "c.wav")
    work = tmp_path / "work"
    made = derived_upload(source, "c.wav", 1, _derivation(), work, known=None)
    sha, size = made.upload.sha256, made.upload.size
    assert made.upload.path.exists() and made.info().done == "channel 1 of 2 as mono FLAC"
    made.discard()  # the upload was confirmed
    again = derived_upload(source, "c.wav", 1, _derivation(), work, known=(sha, size))
    assert (again.upload.sha256, again.upload.size) == (sha, size)
    assert not again.upload.path.exists()  # trusted the journal: nothing converted
    again.ensure()  # the audio still needs its file: made again, the very same bytes
    assert again.upload.path.exists() and again.upload.path.stat().st_size == size
    # what the journal's AudioDerived record is made of (worker/enrollment/audio_steps.py)
    assert (again.derivation.key, again.upload.sha256, again.upload.size) == (
        _derivation().key, sha, size,
    )  # fmt: skip


def test_a_changed_source_is_not_uploaded_under_the_old_alias(tmp_path: Path) -> None:
    source = call(tmp_path / "c.wav")
    made = derived_upload(source, "c.wav", 1, _derivation(), tmp_path / "w", known=None)
    made.discard()
    write_signal(source, np.zeros((2, RATE), dtype=np.float32), RATE)  # replaced meanwhile
    with pytest.raises(AudioUnreadable, match=r"derived again, it is not the file the journal"):
        made.ensure()


def test_the_sweep_removes_only_what_a_killed_conversion_left(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / ".derive-abc.tmp").write_bytes(b"half a flac")
    (work / f"{'1' * 64}.flac").write_bytes(b"a finished one")
    assert sweep_work_dir(work) == 1
    assert [p.name for p in work.iterdir()] == [f"{'1' * 64}.flac"]
    assert sweep_work_dir(tmp_path / "none") == 0
