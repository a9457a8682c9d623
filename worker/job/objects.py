"""An enrollment's S3 objects, downloaded into the job's work folder before its preflight.

Owns: which audios of an enrollment are objects (their stand-in paths, `worker.objects.uri`),
downloading each once per enrollment (`worker.objects.store.S3Store.download`: refused from
its HEAD when too large, within the disk budget, hashed as it streams), and the problem each
failure becomes, located where the manifest names the audio. From there preflight, channel
selection and upload treat the downloads as local files; the enrollment's task deletes them
when it ends (`EnrollmentTask.scratch`), and a job's start sweeps a killed run's leftovers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import structlog

from worker.config.settings import Settings
from worker.manifest.models import Enrollment, Problem
from worker.manifest.preflight import audio_problem
from worker.objects.budget import DiskBudget
from worker.objects.store import ObjectUnavailable, S3Store
from worker.objects.uri import is_object_path, parse_s3_uri

log = structlog.get_logger(__name__)

# Voice ID's own limit on one recording ("20 MB"), read generously as MiB: a Voice ID request's
# objects are refused from their HEAD above it, as Voice ID would have refused them.
VOICEID_MAX_AUDIO_BYTES = 20 * 1024 * 1024


@dataclass
class ObjectFetch:
    """One enrollment's downloads: stand-in path → local file, and what could not be read."""

    files: dict[Path, Path] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def discard(self) -> None:
        for path in self.files.values():
            path.unlink(missing_ok=True)


def has_objects(enrollment: Enrollment) -> bool:
    return any(is_object_path(p) for p in enrollment.audios)


def fetch_objects(
    enrollment: Enrollment,
    file: str,
    store: S3Store | None,
    work_dir: Path | None,
    max_bytes: int,
) -> ObjectFetch:
    """Download each object of `enrollment` into `work_dir` (blocking), once per object.

    `max_bytes` (`ENROLLER_S3_MAX_OBJECT_BYTES`) is lowered to Voice ID's 20 MiB for a Voice ID
    request. Without a store or a work folder (a command that reads no S3), each object is a
    problem.
    On any problem the downloads already made are deleted: the enrollment will not run.
    """
    out = ObjectFetch()
    if enrollment.request_id is not None:  # a Voice ID request
        max_bytes = min(max_bytes, VOICEID_MAX_AUDIO_BYTES)
    for i, (path, name) in enumerate(zip(enrollment.audios, enrollment.audio_names, strict=True)):
        if not is_object_path(path) or path in out.files:
            continue
        uri = parse_s3_uri(name)
        if isinstance(uri, str):  # cannot happen: the manifest parsed the same name
            out.problems.append(audio_problem(enrollment, i, file, uri))
            continue
        if store is None or work_dir is None:
            reason = "is in S3, which only a running job downloads"
            out.problems.append(audio_problem(enrollment, i, file, reason))
            continue
        try:
            owner = f"{enrollment.key}\0{uri}"
            fetched = store.download(uri, work_dir, max_bytes, keep_as=owner)
        except ObjectUnavailable as exc:
            out.problems.append(audio_problem(enrollment, i, file, str(exc)))
            continue
        out.files[path] = fetched.path
        event = "object_reused" if fetched.reused else "object_fetched"
        log.info(event, object=str(uri), size=fetched.size, sha256=fetched.sha256)
    if out.problems:
        out.discard()
    return out


def store_from_settings(settings: Settings) -> S3Store:
    """The process's S3 client as the settings shape it (no connection is made until used)."""
    return S3Store(
        DiskBudget(settings.work_dir_max_bytes),
        attempts=settings.s3_attempts,
        connect_timeout=settings.s3_timeout,
        read_timeout=settings.s3_timeout,
    )
