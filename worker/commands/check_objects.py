"""`enroller check`'s look at S3: a HEAD of each object the manifests name, before the run.

Owns: finding the distinct `s3://` audios of the manifests (walked as a stream, one enrollment
at a time) and asking S3 about each with a HEAD only: it exists, these credentials may read it,
it is not over `ENROLLER_S3_MAX_OBJECT_BYTES`. Each failure is one finding with the reason the
run would give (`worker.objects.s3errors`); the objects that are fine make one line. At most
`MAX_OBJECTS` distinct objects are asked about; past them, a line says how many were not.
Nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from worker.manifest.models import Enrollment, ManifestDefaults
from worker.manifest.read import open_manifest
from worker.objects.store import ObjectUnavailable, S3Store
from worker.objects.uri import S3Uri, is_s3, parse_s3_uri

MAX_OBJECTS = 1000

# (subject, ok, message): check.py makes its `Finding` of each.
ObjectFinding = tuple[str, bool, str]


def manifest_objects(paths: Sequence[str], defaults: ManifestDefaults) -> Iterator[S3Uri]:
    """The distinct objects the manifests' valid enrollments name, in manifest order."""
    seen: set[str] = set()
    for path in paths:
        for item in open_manifest(Path(path), defaults).items():
            if not isinstance(item, Enrollment):
                continue
            for name in item.audio_names:
                if is_s3(name) and name not in seen:
                    seen.add(name)
                    uri = parse_s3_uri(name)
                    if isinstance(uri, S3Uri):
                        yield uri


def object_findings(
    paths: Sequence[str], defaults: ManifestDefaults, store: S3Store, max_bytes: int
) -> list[ObjectFinding]:
    """One finding per object S3 refuses (or too large), and one for those that are fine."""
    findings: list[ObjectFinding] = []
    fine = asked = 0
    more = 0
    for uri in manifest_objects(paths, defaults):
        if asked >= MAX_OBJECTS:
            more += 1
            continue
        asked += 1
        try:
            head = store.head(uri)
        except ObjectUnavailable as exc:
            findings.append((f"object {uri}", False, str(exc)))
            continue
        if head.size > max_bytes:
            reason = f"is {head.size} bytes, over ENROLLER_S3_MAX_OBJECT_BYTES ({max_bytes})"
            findings.append((f"object {uri}", False, reason))
            continue
        fine += 1
    if asked:
        note = f"; {more} more not checked (at most {MAX_OBJECTS})" if more else ""
        findings.append(("objects", fine == asked, f"{fine} of {asked} readable (HEAD){note}"))
    return findings
