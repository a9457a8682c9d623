"""`s3://bucket/key` told from a path, and each reason one is refused (pure)."""

from __future__ import annotations

import pytest

from worker.objects.uri import S3Uri, is_s3, parse_s3_uri


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
