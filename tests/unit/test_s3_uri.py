"""`s3://bucket/key` told from a path, and each reason one is refused (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.commands.plan import plan_paths
from worker.enrollment.requests import enrollment_requests
from worker.manifest.models import Enrollment, ManifestDefaults
from worker.manifest.retry import enrollment_json
from worker.manifest.values import audio_path
from worker.objects.uri import S3Uri, is_object_path, is_s3, parse_s3_uri


def test_an_address_parses_to_bucket_and_key() -> None:
    assert parse_s3_uri("s3://calls-2026/a/b c.wav") == S3Uri("calls-2026", "a/b c.wav")
    assert str(S3Uri("b12", "k.wav")) == "s3://b12/k.wav"
    assert is_s3("S3://x/y") and not is_s3("calls/s3://x")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("s3://", "names no bucket"),
        ("s3:///key.wav", "names no bucket"),
        ("s3://bucket", "no object key"),
        ("s3://bucket/", "no object key"),
        ("s3://Bad_Bucket/k.wav", "not a valid S3 bucket name"),
        ("s3://ab/k.wav", "not a valid S3 bucket name"),
        ("s3://bucket/folder/", "names a folder"),
        ("s3://bucket/" + "k" * 1025, "at most 1024"),
        ("s3://bucket/a\x00b", "NUL"),
        ("calls/a.wav", "is not an s3:// address"),
    ],
)
def test_each_bad_address_has_its_reason(raw: str, reason: str) -> None:
    got = parse_s3_uri(raw)
    assert isinstance(got, str) and reason in got


def test_a_manifest_names_an_object_where_a_path_goes(tmp_path: Path) -> None:
    """values.audio_path, the route every format's audio takes: the stand-in path and the
    address as the name; the retry manifest writes the address back, not the stand-in."""
    got = audio_path("s3://calls/2026/a.wav", tmp_path)
    assert not isinstance(got, str)
    path, name = got
    assert is_object_path(path) and name == "s3://calls/2026/a.wav"
    assert not is_object_path(tmp_path / "s3:" / "x")
    assert (
        audio_path("s3://calls/", tmp_path) == "names a bucket but no object key (s3://bucket/key)"
    )
    enrollment = Enrollment(
        owner="acme",
        space="main",
        identity="c1",
        voiceprint="main",
        model="phone/v1",
        min_audios=1,
        alias=None,
        create_identity=True,
        audios=(path, tmp_path / "local.wav"),
        audio_names=(name, "local.wav"),
        audio_channels=(1, None),
        source="enrollments[0]",
        position=0,
    )
    assert enrollment_json(enrollment, tmp_path)["audios"] == [
        {"path": "s3://calls/2026/a.wav", "channel": 1},
        "local.wav",
    ]


def test_plan_counts_an_object_it_does_not_read(tmp_path: Path) -> None:
    """plan reads no S3: an object is a file of unknown size, a two-step upload, said so."""
    root = tmp_path / "audio"
    root.mkdir()
    manifest = tmp_path / "m.json"
    audio = ["s3://calls/a.wav"]
    manifest.write_text(json.dumps({"enrollments": [{"identity": "c1", "audios": audio}]}))
    defaults = ManifestDefaults(audio_root=root, owner="demo", space="main")
    plan = plan_paths([str(manifest)], defaults, 20.0)
    [file_plan] = plan.files
    assert (file_plan.runnable, file_plan.audio_files, file_plan.s3_files) == (1, 1, 1)
    assert file_plan.upload_bytes == 0
    two_step = enrollment_requests((defaults.inline_upload_max_bytes + 1,), 1)
    assert file_plan.requests - file_plan.usage_check_requests == two_step
