"""`enroller migrate --from MODEL --to MODEL [--identity H … | --all]`: queue a migration.

Owns: turning the command line into a migration manifest (worker.manifest.migration) and
handing it to `submit`, so that it is checked, published into the inbox the safe way and named
by its job id like any manifest. It never calls the API: the worker moves the voiceprints,
and `enroller plan` / `check` say what the migration will cost first.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from worker.base.exitcodes import EXIT_FAILURES, EXIT_OK
from worker.commands.submit import inbox_line, submit_files
from worker.manifest.models import ManifestDefaults


def migration_document(
    from_model: str,
    to_model: str,
    identities: Sequence[str] | None,
    *,
    owner: str | None,
    space: str | None,
    voiceprint: str,
    retire: str,
) -> dict[str, object]:
    """The manifest `enroller migrate` queues (pure); `identities` None: every identity."""
    doc: dict[str, object] = {"migrate": {"from": from_model, "to": to_model}}
    if owner is not None:
        doc["owner"] = owner
    if space is not None:
        doc["space"] = space
    doc["voiceprint"] = voiceprint
    doc["retire"] = retire
    doc["identities"] = "all" if identities is None else list(identities)
    return doc


def migration_file_name(from_model: str, to_model: str, space: str | None) -> str:
    """`migrate-default-v1-to-phone-v1-calls.json`: what the inbox and the reports call it."""
    words = ["migrate", from_model, "to", to_model, *([space] if space else [])]
    return re.sub(r"[^a-z0-9]+", "-", "-".join(words).lower()).strip("-") + ".json"


def run_migrate(
    doc: dict[str, object],
    name: str,
    queue_dir: Path,
    defaults: ManifestDefaults,
    *,
    as_json: bool,
    out: TextIO | None = None,
) -> int:
    """Write the migration under `name` and submit it: checked like any manifest, published
    into the inbox, its job id printed. 0 when queued, 1 when a problem stopped it."""
    stream = out if out is not None else sys.stdout
    with tempfile.TemporaryDirectory(prefix="enroller-migrate-") as tmp:
        path = Path(tmp) / name
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        result = submit_files([str(path)], queue_dir, defaults, validate=True)
    if as_json:
        stream.write(result.model_dump_json(indent=2) + "\n")
        return EXIT_OK if result.ok else EXIT_FAILURES
    for problem in result.problems:
        stream.write(f"{problem}\n".replace(str(path), name))
    for item in result.submitted:
        done = "already waiting as" if item.already_queued else "queued as"
        stream.write(f"migration {done} {inbox_line(result, item)}: job {item.job_id}\n")
        stream.write("enroller plan and enroller check say what it will cost\n")
    return EXIT_OK if result.ok else EXIT_FAILURES
