"""Manifests read whole, for tests: the worker itself only walks them (`ManifestStream`).

`parse_manifest` (bytes) and `read_manifest` (a path) take the worker's own ways in
(`worker.manifest.read.stream_manifest`, `open_manifest`); `collected` walks the stream once,
as `validate` and a job do, and keeps everything it yields in a `ParsedManifest`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from worker.manifest.models import (
    Enrollment,
    Kind,
    ManifestDefaults,
    Problem,
    RejectedEnrollment,
)
from worker.manifest.read import open_manifest, stream_manifest
from worker.manifest.stream import ManifestStream


class ParsedManifest(BaseModel):
    """A parsed manifest: runnable enrollments, rejected ones, and whole-file problems."""

    file: str
    kind: Kind | None = None
    enrollments: list[Enrollment] = Field(default_factory=list)
    rejected: list[RejectedEnrollment] = Field(default_factory=list)
    file_problems: list[Problem] = Field(default_factory=list)
    warnings: list[Problem] = Field(default_factory=list)
    csv_columns: list[str] | None = None  # a CSV's header, as written

    @property
    def problems(self) -> list[Problem]:
        """Every error: the file's first, then each rejected enrollment's, in manifest order."""
        out = list(self.file_problems)
        for rejected in sorted(self.rejected, key=lambda r: r.position):
            out.extend(rejected.problems)
        return out

    @property
    def ok(self) -> bool:
        return not self.file_problems and not self.rejected

    @property
    def total(self) -> int:
        return len(self.enrollments) + len(self.rejected)


def collected(stream: ManifestStream) -> ParsedManifest:
    """One walk of `stream` (`walk()`), everything it yields kept: enrollments, rejections,
    and the warnings the walk found."""
    items, warnings = stream.walk()
    good: list[Enrollment] = []
    bad: list[RejectedEnrollment] = []
    for item in items:
        if isinstance(item, Enrollment):
            good.append(item)
        else:
            bad.append(item)
    return ParsedManifest(
        file=stream.file,
        kind=stream.kind,
        enrollments=good,
        rejected=bad,
        file_problems=stream.file_problems,
        warnings=warnings,
        csv_columns=stream.csv_columns,
    )


def parse_manifest(data: bytes, file: str, defaults: ManifestDefaults) -> ParsedManifest:
    """A manifest's bytes, as the worker reads a file it holds whole (`stream_manifest`)."""
    return collected(stream_manifest(data, file, defaults))


def read_manifest(
    path: Path, defaults: ManifestDefaults, name: str | None = None
) -> ParsedManifest:
    """A manifest file, as the job and `validate` open it (`open_manifest`)."""
    return collected(open_manifest(path, defaults, name))
