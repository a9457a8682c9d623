"""`enroller submit s3://bucket/manifest.json`: a manifest fetched from S3 into the inbox.

Owns: the S3 side of submit. The object is downloaded into inbox/ (refused from its HEAD over
the manifest limit, streamed, hashed, fsynced: `worker.objects.store`), then given the same
temporary dot-name a local copy gets, from where `worker.commands.submit` validates and
publishes it as any other. And the S3 client a call uses: the one given, or one on the AWS
configuration chain made for the call and closed after it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from worker.base.fsutil import temp_name_for
from worker.objects.store import ObjectUnavailable, S3Store
from worker.objects.uri import is_s3, parse_s3_uri


def fetch_manifest(
    source: str, name: str, inbox: Path, max_bytes: int, store: S3Store
) -> tuple[Path, str, int]:
    """(temporary dot-name in inbox/, sha256, size) of the object `source`; raises
    `ObjectUnavailable` with the reason (no such object, denied, too large…)."""
    uri = parse_s3_uri(source)
    if isinstance(uri, str):
        raise ObjectUnavailable(uri)
    fetched = store.download(uri, inbox, max_bytes)
    tmp = temp_name_for(inbox / name)
    os.replace(fetched.path, tmp)
    return tmp, fetched.sha256, fetched.size


@contextlib.contextmanager
def store_for(sources: Sequence[str], store: S3Store | None) -> Iterator[S3Store | None]:
    """`store`, or one made for these sources when one is in S3 (closed at the end), or None."""
    if store is not None or not any(is_s3(source) for source in sources):
        yield store
        return
    own = S3Store()
    try:
        yield own
    finally:
        own.close()
