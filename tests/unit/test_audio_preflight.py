"""Preflight of enrollments: per-file results become per-enrollment problems, others unaffected."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.audiogen import write_audio
from tests.manifests import parse_manifest
from worker.commands.validate import Checks, check_stream, preflighted
from worker.manifest.models import ManifestDefaults, Problem
from worker.manifest.preflight import AudioCache, preflight_enrollment
from worker.manifest.read import stream_manifest


def test_a_bad_file_sinks_only_its_own_enrollment(tmp_path: Path) -> None:
    write_audio(tmp_path / "a1.wav", 3.0)
    write_audio(tmp_path / "a2.wav", 4.0)
    write_audio(tmp_path / "b.wav", 5.0, samplerate=1000)
    text = (
        "identity,audio,model,minAudios\n"
        "ann,a1.wav,digital/v1,2\n"
        "bob,b.wav,digital/v1,1\n"
        "ann,a2.wav,,\n"
    )
    stream = stream_manifest(
        text.encode(), "b.csv", ManifestDefaults(audio_root=tmp_path, owner="o", space="s")
    )
    ann, bob = [pre for _, pre in preflighted(stream.items(), "b.csv", Checks(tmp_path), {})]
    assert ann.ok and [f.path.name for f in ann.facts] == ["a1.wav", "a2.wav"]
    assert not bob.ok and bob.facts == ()
    errors: list[Problem] = []
    result = check_stream(stream, Checks(tmp_path), errors.append, errors.append)
    assert [str(p) for p in errors] == [
        'b.csv line 3: audio "b.wav": sample rate 1000 Hz is below the 16000 Hz '
        "that digital/v1 needs"
    ]
    assert (result.valid, result.invalid, result.audio_files, result.audio_seconds) == (
        1,
        1,
        2,
        7.0,
    )


def test_two_names_for_one_content_are_refused(tmp_path: Path) -> None:
    write_audio(tmp_path / "a.wav", 5.0)
    shutil.copy(tmp_path / "a.wav", tmp_path / "copy.wav")
    parsed = parse_manifest(
        b'{"identity": "ann", "audios": ["a.wav", "copy.wav"]}',
        "one.json",
        ManifestDefaults(audio_root=tmp_path, owner="o", space="s"),
    )
    pre = preflight_enrollment(parsed.enrollments[0], tmp_path, "one.json")
    assert [str(p) for p in pre.problems] == [
        'one.json: audios[1] "copy.wav": has the same content as "a.wav"'
    ]


def test_a_shared_file_is_read_once_through_the_cache(tmp_path: Path) -> None:
    write_audio(tmp_path / "a.wav", 5.0)
    parsed = parse_manifest(
        b'{"enrollments": [{"identity": "ann", "audios": ["a.wav"]},'
        b' {"identity": "ann", "voiceprint": "hq", "model": "digital/v1", "audios": ["a.wav"]}]}',
        "j.json",
        ManifestDefaults(audio_root=tmp_path, owner="o", space="s"),
    )
    cache: AudioCache = {}
    first = preflight_enrollment(parsed.enrollments[0], tmp_path, "j.json", cache)
    (tmp_path / "a.wav").unlink()  # a second read would now fail
    second = preflight_enrollment(parsed.enrollments[1], tmp_path, "j.json", cache)
    assert first.ok and second.ok
    assert first.facts[0].sha256 == second.facts[0].sha256
    assert len(cache) == 1
