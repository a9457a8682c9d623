"""`ManifestStream`: a manifest checked as a file, its enrollments built only when iterated.

Owns: the one shape every format hands out (`json`, `csv`, `read`): what spoils the whole file
(`file_problems`) and how many enrollments it names (`total`) at once, and a generator of its
enrollments that starts over at each `items()` call, so a job can walk it again at report time
(for the failures CSV and the retry manifest) instead of keeping every enrollment: 50 000
`Enrollment` models at once cost ~100 MB, a job only needs those in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from worker.manifest.build import Builder, json_place
from worker.manifest.models import (
    Kind,
    ManifestDefaults,
    ManifestItem,
    Migration,
    Problem,
)


def csv_place(position: int) -> str:
    return f"line {position}"  # a CSV enrollment's position is its first line


@dataclass
class ManifestStream:
    """A manifest read and checked as a file, its enrollments built only when iterated."""

    file: str
    defaults: ManifestDefaults
    kind: Kind | None = None
    total: int = 0
    file_problems: list[Problem] = field(default_factory=list)
    csv_columns: list[str] | None = None  # a CSV's header, as written
    csv_delimiter: str = ","  # a CSV's delimiter: the failures CSV is written in it too
    field_names: Mapping[str, str] = field(default_factory=dict)  # JSON name -> name shown
    generate: Callable[[Builder], Iterator[ManifestItem]] | None = None
    migration: Migration | None = None  # a migration manifest's (worker.manifest.migration)
    # How messages name a position, when the format's own way is not a JSON job's or a CSV's
    # (a Voice ID manifest's `SpeakerEnrollmentRequests[3]`).
    place_of: Callable[[int], str] | None = None

    def items(self) -> Iterator[ManifestItem]:
        """Every enrollment, valid or rejected, in manifest order (by `position`)."""
        return self._items(self.builder())

    def walk(self) -> tuple[Iterator[ManifestItem], list[Problem]]:
        """`items()`, and the warnings list the walk fills as it goes (a deprecated model…)."""
        builder = self.builder()
        return self._items(builder), builder.warnings

    def builder(self) -> Builder:
        """A fresh builder for one walk (its own warnings)."""
        place_of = self.place_of or (csv_place if self.kind == "csv" else json_place)
        return Builder(self.file, self.defaults, self.field_names, place_of)

    def _items(self, builder: Builder) -> Iterator[ManifestItem]:
        if self.file_problems or self.generate is None:
            return iter(())
        return self.generate(builder)


def broken(
    file: str,
    defaults: ManifestDefaults,
    problems: list[Problem],
    kind: Kind | None = None,
    header: list[str] | None = None,
) -> ManifestStream:
    """A manifest that cannot be used at all: its file problems, no enrollments."""
    return ManifestStream(
        file=file, defaults=defaults, kind=kind, file_problems=problems, csv_columns=header
    )
