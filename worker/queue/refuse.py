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
from pathlib import Path, PurePath

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


def refuse_inbox_file(paths: QueuePaths, name: str) -> Path | None:
    """Move inbox/`name` to failed/ beside `<job>.error.json`; None when it is gone already
    (another worker moved it, or its dropper removed it)."""
    source = paths.inbox / name
    try:
        job_id = job_id_for(name, sha256_file(source))
    except OSError:
        return None
    reason = refusal_reason(name)
    problem = {"file": name, "place": "", "field": "", "value": None, "reason": reason}
    document = {"job_id": job_id, "file": name, "problems": [problem], "failed_at": utcnow()}
    dest = paths.failed / f"{job_id}{PurePath(name).suffix}"
    try:
        atomic_write_json(paths.error_path(job_id), document)
        os.link(source, dest)  # never replaces: the same bytes refused twice keep one copy
    except FileExistsError:
        pass
    except OSError as exc:
        log.warning("inbox_file_not_refused", file=name, error=exc.strerror or str(exc))
        return None
    with contextlib.suppress(FileNotFoundError):
        os.unlink(source)
    fsync_dir(paths.failed)
    fsync_dir(paths.inbox)
    log.warning("inbox_file_refused", file=name, job_id=job_id, reason=reason, moved_to=str(dest))
    return dest
