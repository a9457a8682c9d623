"""A migration manifest: move a space's voiceprints from one model to another.

    {"migrate": {"from": "default/v1", "to": "phone/v1"}, "owner": "acme", "space": "calls",
     "voiceprint": "main", "identities": ["cust-1", "cust-2"] | "all", "retire": "delete"}

Owns: reading and checking that document (`stream_migration`), the `Migration` it describes,
its enrollments (one per identity: the model to move to, the model to move from, no file) and
its retry manifest (the same migration, for the identities that failed). `"all"` is expanded
by the job, which pages through the space's identities once and keeps the list beside the job
(`ManifestStream.with_identities`), so a resumed job walks the same list. Pure but for reading
that list back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from worker.audio.inspect import model_problem
from worker.base.streamout import StreamedObject, TextWriter
from worker.manifest.build import Builder
from worker.manifest.models import (
    ManifestDefaults,
    ManifestItem,
    Migration,
    Problem,
    RejectedEnrollment,
)
from worker.manifest.policy import policy_problem
from worker.manifest.stream import ManifestStream, broken
from worker.manifest.values import DEFAULT_VOICEPRINT, handle_problem, show, unknown_reason

MIGRATION_KEYS = frozenset(
    {"migrate", "owner", "space", "voiceprint", "identities", "retire", "comment"}
)
_MIGRATE_KEYS = frozenset({"from", "to"})


class AddProblem(Protocol):
    """Records one problem of the file: field, value as given, reason (`given`: a value was)."""

    def __call__(self, field: str, value: Any, reason: str, *, given: bool = True) -> None: ...


def stream_migration(doc: dict[str, Any], file: str, defaults: ManifestDefaults) -> ManifestStream:
    """A migration document as a stream of one enrollment per identity (or, for "all", none
    until the job has listed the space's identities)."""
    problems: list[Problem] = []

    def add(field: str, value: Any, reason: str, *, given: bool = True) -> None:
        problems.append(
            Problem(file=file, field=field, value=show(value) if given else None, reason=reason)
        )

    for key in sorted(set(doc) - MIGRATION_KEYS):
        add(key, None, unknown_reason(MIGRATION_KEYS - {"comment"}), given=False)
    models = _models(doc.get("migrate"), add)
    owner = _handle(doc, "owner", defaults.owner, add)
    space = _handle(doc, "space", defaults.space, add)
    voiceprint = _handle(doc, "voiceprint", DEFAULT_VOICEPRINT, add)
    retire = doc.get("retire", defaults.retire)
    if reason := policy_problem("retire", retire):
        add("retire", retire, reason)
    identities = doc.get("identities")
    if identities != "all" and not (isinstance(identities, list) and identities):
        add("identities", identities, 'must be a list of identity handles or "all"')
    if problems or models is None or not (owner and space and voiceprint):
        return broken(file, defaults, problems, kind="migrate")
    migration = Migration(
        from_model=models[0],
        to_model=models[1],
        owner=owner,
        space=space,
        voiceprint=voiceprint,
        retire=retire.strip().lower(),
        identities="all" if identities == "all" else tuple(identities),
    )
    stream = ManifestStream(file=file, defaults=defaults, kind="migrate", migration=migration)
    if migration.identities == "all":
        return stream  # the job lists them (`with_identities`)
    listed = migration.identities
    return replace(stream, total=len(listed), generate=lambda b: _items(b, migration, listed))


def with_identities(stream: ManifestStream, path: Path, count: int) -> ManifestStream:
    """A migration of "all" once the job has listed the identities into `path`, one a line."""
    migration = stream.migration
    assert migration is not None

    def lines() -> Iterator[str]:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                yield line.rstrip("\n")

    return replace(stream, total=count, generate=lambda b: _items(b, migration, lines()))


def _items(
    builder: Builder, migration: Migration, identities: Iterable[Any]
) -> Iterator[ManifestItem]:
    """One enrollment per identity; a bad or repeated handle is rejected alone, located."""
    seen: set[str] = set()
    for i, identity in enumerate(identities):
        place = f"identities[{i}]"
        reason = None
        if not isinstance(identity, str):
            reason = "must be text"
        elif reason := handle_problem(identity):
            pass
        elif identity in seen:
            reason = "listed twice"
        if reason is not None:
            problem = builder.problem(place, "identity", identity, reason)
            yield _rejected(migration, place, i, problem, identity)
            continue
        seen.add(identity)
        yield migration.enrollment(identity, i, place)


def _rejected(
    migration: Migration, place: str, position: int, problem: Problem, identity: Any
) -> ManifestItem:
    return RejectedEnrollment(
        identity=identity if isinstance(identity, str) else None,
        source=place,
        position=position,
        owner=migration.owner,
        space=migration.space,
        voiceprint=migration.voiceprint,
        problems=(problem,),
    )


def _models(value: Any, add: AddProblem) -> tuple[str, str] | None:
    if not isinstance(value, dict):
        add("migrate", value, 'must be {"from": "<model>", "to": "<model>"}')
        return None
    for key in sorted(set(value) - _MIGRATE_KEYS):
        add(f"migrate.{key}", None, 'unknown field; known fields are "from" and "to"', given=False)
    found: list[str] = []
    for key in ("from", "to"):
        model = value.get(key)
        if not isinstance(model, str):
            add(
                f"migrate.{key}", model, "must be a model such as phone/v1", given=model is not None
            )
        elif reason := model_problem(model):
            add(f"migrate.{key}", model, reason)
        else:
            found.append(model)
    if len(found) == 2 and found[0] == found[1]:
        add("migrate.to", found[1], "is the model migrated from: nothing would move")
        return None
    return (found[0], found[1]) if len(found) == 2 else None


def _handle(doc: dict[str, Any], name: str, fallback: str | None, add: AddProblem) -> str | None:
    value = doc.get(name, fallback)
    if value is None:
        add(
            name,
            None,
            f"is missing; name it in the manifest or set ENROLLER_{name.upper()}",
            given=False,
        )
        return None
    if not isinstance(value, str) or (reason := handle_problem(value)):
        add(name, value, "must be text" if not isinstance(value, str) else reason)
        return None
    return value


def write_migration_retry(
    out: TextWriter, migration: Migration, identities: Iterable[str], comment: str | None
) -> None:
    """The same migration for `identities` only, written as they come (flat memory)."""
    doc = StreamedObject(out, indented=True)
    if comment is not None:
        doc.value("comment", comment)
    for key, value in migration.document(()).items():
        if key != "identities":
            doc.value(key, value)
    doc.array("identities")
    for identity in identities:
        doc.add_json(json.dumps(identity, ensure_ascii=False))
    doc.close()
    out.write("\n")
