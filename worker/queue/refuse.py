"""Files in inbox/ that are not manifests: moved to failed/ with the reason, never left unseen.

Owns: the reason a name is refused (`refusal_reason`, pure: a spreadsheet gets "save as CSV
UTF-8") and the move (`refuse_inbox_file`): `<job>.error.json` first, then a rename of the
file into failed/ that never replaces another. An operator who dropped `customers.xlsx` finds it
in failed/ with a line saying what to do, and `enroller status` counts it there; before, it sat
in inbox/ for ever with one log line. Several workers may race on one file: the one whose rename
succeeds moved it, the others find it gone and do nothing more.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import PurePath

import structlog

from worker.base.fsutil import atomic_write_json, fsync_dir, sha256_file
from worker.queue.lease import utcnow
from worker.queue.paths import QueuePaths
from worker.queue.rules import CANDIDATE_SUFFIXES, job_id_for

log = structlog.get_logger("worker.queue")

# Formats a spreadsheet saves by default: the answer is the same for all of them.
SPREADSHEET_SUFFIXES = frozenset({".xlsx", ".xlsm", ".xls", ".ods", ".numbers"})


def refusal_reason(name: str) -> str:
    """Why the inbox file `name` is not read, and what to do instead."""
    suffix = PurePath(name.lower()).suffix
    accepted = " or ".join(sorted(CANDIDATE_SUFFIXES))
    if suffix in SPREADSHEET_SUFFIXES:
        return (
            f"{suffix.lstrip('.')} is not supported: save it as CSV UTF-8 (a .csv file) "
            "and drop that"
        )
    kind = f"a {suffix.lstrip('.')} file" if suffix else "a file without an extension"
    return f"not a manifest: {kind}; only {accepted} manifests are read"


def refuse_inbox_file(paths: QueuePaths, name: str) -> str | None:
    """Move inbox/`name` to failed/ beside `<job>.error.json` (or find it gone already: another
    worker moved it, its dropper removed it): None. When it cannot be moved (a read-only or
    full disk), the reason, which the caller tells once; the file stays in inbox/."""
    source = paths.inbox / name
    try:
        job_id = job_id_for(name, sha256_file(source))
    except FileNotFoundError:
        return None
    except OSError as exc:  # told once by the caller's notes, not at every scan
        return exc.strerror or str(exc)
    reason = refusal_reason(name)
    problem = {"file": name, "place": "", "field": "", "value": None, "reason": reason}
    document = {"job_id": job_id, "file": name, "problems": [problem], "failed_at": utcnow()}
    dest = paths.failed / f"{job_id}{PurePath(name).suffix}"
    try:
        atomic_write_json(paths.error_path(job_id), document)
        with contextlib.suppress(FileExistsError):  # the same bytes refused twice: one copy
            os.link(source, dest)  # never replaces another file
        with contextlib.suppress(FileNotFoundError):
            os.unlink(source)
        fsync_dir(paths.failed)
        fsync_dir(paths.inbox)
    except OSError as exc:
        return exc.strerror or str(exc)
    log.warning("inbox_file_refused", file=name, job_id=job_id, reason=reason, moved_to=str(dest))
    return None
