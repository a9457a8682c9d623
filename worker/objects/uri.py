"""`s3://bucket/key`: what a manifest may name instead of a local path.

Owns: telling an object's address from a path, and the reason one is refused (bucket names as
S3 allows them, a key of 1–1024 bytes). Pure: no request is made here. The manifest's path
resolution (`worker.manifest.values.audio_path`) asks `parse_s3_uri` first, so every format that
names audio (JSON, CSV, Voice ID) gets S3 the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SCHEME = "s3://"
# S3's rules for a bucket created since 2018: 3-63 characters, lowercase letters, digits, dots
# and hyphens, beginning and ending with a letter or digit.
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
KEY_MAX_BYTES = 1024
# Where an object stands among an enrollment's paths until it is downloaded: a name no file
# has (`/s3:/bucket/key`), so checks that compare paths (one audio listed twice, one audio for
# two identities) treat objects as they treat files, and nothing opens it as one.
OBJECT_ROOT = Path("/s3:")


@dataclass(frozen=True, slots=True)
class S3Uri:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"


def is_s3(raw: str) -> bool:
    """Whether `raw` names an object (`s3://…`, the scheme in any case) rather than a path."""
    return raw[: len(SCHEME)].lower() == SCHEME


def parse_s3_uri(raw: str) -> S3Uri | str:
    """The bucket and key of `s3://bucket/key`, or the reason it is not a usable address."""
    if not is_s3(raw):
        return "is not an s3:// address"
    rest = raw[len(SCHEME) :]
    bucket, slash, key = rest.partition("/")
    if not bucket:
        return "names no bucket (s3://bucket/key)"
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        return (
            f"bucket {bucket!r} is not a valid S3 bucket name (3-63 lowercase letters, "
            "digits, dots and hyphens)"
        )
    if not slash or not key:
        return "names a bucket but no object key (s3://bucket/key)"
    if "\x00" in key:
        return "contains a NUL character"
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid Unicode text"
    if size > KEY_MAX_BYTES:
        return f"object key is {size} bytes; S3 keys are at most {KEY_MAX_BYTES}"
    if key.endswith("/"):
        return "names a folder (the key ends with /), not an object"
    return S3Uri(bucket=bucket, key=key)


def object_path(uri: S3Uri) -> Path:
    """The stand-in path of an object among an enrollment's paths (see `OBJECT_ROOT`)."""
    return Path(f"{OBJECT_ROOT}/{uri.bucket}/{uri.key}")


def is_object_path(path: Path) -> bool:
    return path.parts[:2] == OBJECT_ROOT.parts
