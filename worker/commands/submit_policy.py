"""`enroller submit --existing skip|overwrite`: the policy written into the published copy.

Owns: putting the `existing` policy into the manifest itself, in its own words, before it is
validated and published: a JSON job or single enrollment gets a top-level `"existing"`, a Voice
ID manifest `"EnrollmentConfig": {"ExistingEnrollmentAction": "SKIP" | "OVERWRITE"}`. Why in
the file and not beside it: the inbox file is then all there is to know (what an operator reads
is what the worker does), the job id (a hash of the content) tells a copy submitted with
`--existing overwrite` from one submitted without, and nothing can be lost between two files by
a `kill -9`: the copy is rewritten under a dot-name the worker ignores, fsynced, and only then
takes the staged copy's place. The JSON member is inserted after the document's first `{`; a
CSV gets an `existing` column, written row by row: both streamed, so a large manifest is never
held whole. A file that already names a policy keeps it when it is the same, and is refused
when it differs (a CSV with an `existing` column always: its rows say it); a migration always
overwrites, and is refused with that reason.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from worker.base.errors import JobMustFail
from worker.base.fsutil import open_regular
from worker.manifest.jsonscan import BOM, JsonScanError, scan_job
from worker.manifest.voiceid import is_voiceid

_CHUNK = 1 << 20
_WHITESPACE = b" \t\r\n"


class PolicyRefused(JobMustFail):
    """The policy cannot be written into this file; the message says why, for a person."""


def write_policy(path: Path, existing: str, name: str) -> tuple[str, int] | None:
    """Write `existing` into the manifest at `path`, named `name` (its suffix says CSV or JSON)
    (blocking): the new (sha256, size), or None when the file already says the same. Raises
    `PolicyRefused`."""
    if name.lower().endswith(".csv"):
        return _rewrite(path, lambda src: _csv_chunks(src, existing))
    member = _member(path, existing)
    if member is None:
        return None
    return _rewrite(path, lambda src: _json_chunks(src, member))


def _rewrite(path: Path, chunks: Callable[[IO[bytes]], Iterator[bytes]]) -> tuple[str, int]:
    """`path` rewritten as `chunks` of its bytes: under a dot-name beside it, fsynced, then
    renamed over it, so that a kill leaves the staged copy whole, old or new."""
    tmp = path.with_name(path.name + ".policy")
    digest, size = hashlib.sha256(), 0
    try:
        with open_regular(path) as src, open(tmp, "xb") as out:
            for chunk in chunks(src):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except (OSError, PolicyRefused) as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, PolicyRefused):
            raise
        raise PolicyRefused(f"cannot be rewritten with the policy ({exc.strerror})") from None
    return digest.hexdigest(), size


def _json_chunks(src: IO[bytes], member: str) -> Iterator[bytes]:
    """The document with `member` first in its top-level object."""
    head = src.read(_CHUNK)
    at = _opening(head)
    yield head[: at + 1]
    yield member.encode() + b", "
    yield head[at + 1 :]
    while chunk := src.read(_CHUNK):
        yield chunk


def _csv_chunks(src: IO[bytes], existing: str) -> Iterator[bytes]:
    """The CSV with an `existing` column holding the policy on every row that has the header's
    cells (a blank row stays blank, and a short one as it is, for validation to report)."""
    text = io.TextIOWrapper(src, encoding="utf-8-sig", newline="")
    rows = csv.reader(text)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    try:
        header = next(rows, None)
        if header is None:
            raise PolicyRefused("is empty")
        if "existing" in (re.sub(r"[\s_-]", "", c).lower() for c in header):  # as columns.py
            raise PolicyRefused("has an existing column: its rows say the policy, not --existing")
        writer.writerow([*header, "existing"])
        for row in rows:
            filled = len(row) >= len(header) and any(c.strip() for c in row)
            writer.writerow([*row, existing] if filled else row)
            if out.tell() > _CHUNK:
                yield out.getvalue().encode()
                out.seek(0)
                out.truncate()
    except (UnicodeDecodeError, csv.Error) as exc:
        raise PolicyRefused(f"cannot be read as CSV to add the policy ({exc})") from None
    finally:
        text.detach()
    yield out.getvalue().encode()


def _opening(head: bytes) -> int:
    """Where the document's first `{` stands (after a BOM and whitespace)."""
    start = len(BOM) if head.startswith(BOM) else 0
    while start < len(head) and head[start] in _WHITESPACE:
        start += 1
    if head[start : start + 1] != b"{":
        raise PolicyRefused("is not a JSON object")
    return start


def _member(path: Path, existing: str) -> str | None:
    """The JSON member to insert, or None when the file already says `existing`."""
    try:
        with open_regular(path) as fh:
            scan = scan_job(fh)
    except JsonScanError as exc:
        raise PolicyRefused(str(exc)) from None
    except OSError as exc:
        raise PolicyRefused(f"cannot be read ({exc.strerror})") from None
    if scan.top_level != "object" or not scan.keys:
        raise PolicyRefused("is not a JSON manifest (an object with fields)")
    if "migrate" in scan.keys:
        raise PolicyRefused("a migration always overwrites: --existing does not apply")
    if is_voiceid(scan.keys):
        return _voiceid_member(scan.kinds, scan.members, existing)
    if "existing" in scan.keys:
        given = scan.scalars.get("existing")
        if isinstance(given, str) and given.strip().lower() == existing:
            return None
        raise PolicyRefused(f"names existing {json.dumps(given)}; --existing {existing} differs")
    return f'"existing": "{existing}"'


def _voiceid_member(kinds: dict[str, str], members: dict[str, object], existing: str) -> str | None:
    action = {"skip": "SKIP", "overwrite": "OVERWRITE"}.get(existing)
    if action is None:
        raise PolicyRefused("Voice ID's ExistingEnrollmentAction is SKIP or OVERWRITE")
    if "EnrollmentConfig" not in kinds:
        return f'"EnrollmentConfig": {{"ExistingEnrollmentAction": "{action}"}}'
    given = members.get("EnrollmentConfig.ExistingEnrollmentAction")
    if isinstance(given, str) and given.strip().upper() == action:
        return None
    if given is None:
        raise PolicyRefused(
            f"has an EnrollmentConfig: write ExistingEnrollmentAction {action} in it"
        )
    raise PolicyRefused(
        f"says ExistingEnrollmentAction {json.dumps(given)}; --existing {existing} differs"
    )
