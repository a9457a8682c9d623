"""The retry manifest: enrollments written back as a JSON job that can be dropped in again.

Owns: the JSON form of one `Enrollment` with every value explicit (so the file means the same
under another worker's defaults, its audio paths relative to the audio root) and the writer
that writes a whole job as its enrollments come (`worker.base.streamout.StreamedObject`), so
memory stays flat for any count. It opens no file itself: the job's report writer does,
atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from worker.base.streamout import StreamedObject, TextWriter
from worker.manifest.models import Enrollment
from worker.manifest.values import lexically_inside, relative_name
from worker.objects.uri import is_s3


def _relative(path: Path, audio_root: Path) -> str:
    root = os.path.normpath(audio_root)
    full = os.path.normpath(path)
    if not lexically_inside(full, root):
        return full  # cannot happen for a parsed enrollment; keep the path usable anyway
    return relative_name(full, root)


def enrollment_json(enrollment: Enrollment, audio_root: Path) -> dict[str, Any]:
    """One enrollment in the JSON job format, every value explicit (no reliance on defaults)."""
    out: dict[str, Any] = {
        "owner": enrollment.owner,
        "space": enrollment.space,
        "identity": enrollment.identity,
        "voiceprint": enrollment.voiceprint,
        "model": enrollment.model,
        "minAudios": enrollment.min_audios,
    }
    if enrollment.alias is not None:
        out["alias"] = enrollment.alias
    out["createIdentity"] = enrollment.create_identity
    out["existing"] = enrollment.existing
    out["retire"] = enrollment.retire
    # An object keeps its s3:// address (its name); a file is written relative to the root.
    paths = [
        name if is_s3(name) else _relative(p, audio_root)
        for p, name in zip(enrollment.audios, enrollment.audio_names, strict=True)
    ]
    out["audios"] = [
        path if ch is None else {"path": path, "channel": ch}
        for path, ch in zip(paths, enrollment.channels, strict=True)
    ]
    return out


RetryEntry = Enrollment | Mapping[str, Any]


def write_retry_manifest(
    out: TextWriter, enrollments: Iterable[RetryEntry], audio_root: Path, comment: str | None
) -> None:
    """A JSON job manifest of `enrollments`, written as they come (flat memory for any count).

    Every value is written out, so the file means the same under another worker's defaults;
    audio paths are relative to `audio_root`, so it can be dropped back into `inbox/`. An entry
    that is not an `Enrollment` is an enrollment already in the JSON format (one the parser
    rejected, as written: `RejectedEnrollment.given`), written as it is, for the operator to fix.
    """
    doc = StreamedObject(out, indented=True)
    if comment is not None:
        doc.value("comment", comment)
    doc.array("enrollments")
    for entry in enrollments:
        values = enrollment_json(entry, audio_root) if isinstance(entry, Enrollment) else entry
        doc.add_json(json.dumps(values, ensure_ascii=False))
    doc.close()
    out.write("\n")
