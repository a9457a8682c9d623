"""A job's input: its manifest as a stream of enrollments, each preflighted as it is reached.

Owns: the bridge from `worker.manifest` and its preflight (what the producer asked for, and
what is wrong with it) to `worker.enrollment` (what to run), plus the two outputs that speak the
input's own language: the failures CSV rows and the retry manifest.

Nothing here holds the whole job: a 50 000-enrollment manifest is walked one enrollment at a
time (`planned()`), preflight runs a few files ahead of the API work instead of all of it
before the first request, and the report outputs walk the manifest again, one enrollment at a
time, asking the journal's index how each one ended. Preflight still costs no API call: an
enrollment whose files are bad never reaches the driver, so a manifest with nothing runnable
costs no request at all, and still gets its report, failures CSV and retry manifest.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from worker.audio.derive import DerivedUpload, derived_upload, sweep_work_dir
from worker.audio.files import AudioUnreadable, VerifiedUpload
from worker.audio.inspect import MAX_UPLOAD_BYTES, too_large_reason
from worker.base.fsutil import atomic_writer
from worker.base.streamout import EncodedText
from worker.config.settings import setting_default
from worker.enrollment.task import EnrollmentTask, outcome_record
from worker.job.objects import ObjectFetch, fetch_objects, has_objects
from worker.job.report import OK_OUTCOMES, FailuresCsv, cell, needs_action
from worker.journal.records import EnrollmentOutcome, ErrorInfo, Outcome, Step
from worker.manifest.migration import write_migration_retry
from worker.manifest.models import Enrollment, ManifestDefaults, ManifestItem, Problem
from worker.manifest.preflight import EnrollmentPreflight, audio_problem, preflight_enrollment
from worker.manifest.read import open_manifest
from worker.manifest.retry import RetryEntry, enrollment_json, write_retry_manifest
from worker.manifest.stream import ManifestStream
from worker.manifest.voiceid_retry import write_voiceid_retry
from worker.objects.store import S3Store, sweep_fetches


@dataclass(slots=True)
class PlannedEnrollment:
    """One enrollment of the manifest, runnable (`task`) or not (`problems`)."""

    key: str
    source: str
    identity: str
    voiceprint: str
    owner: str
    space: str
    enrollment: Enrollment | None
    problems: list[Problem] = field(default_factory=list)
    task: EnrollmentTask | None = None
    request_id: str | None = None  # a Voice ID request's (worker.manifest.voiceid)
    speaker_id: str | None = None
    model: str | None = None  # as given, also when it is not a model the worker knows

    def failed(self, step: Step, reason: str) -> EnrollmentOutcome:
        return outcome_record(
            self,
            Outcome.FAILED,
            model=self.model,
            attempts=0,
            error=ErrorInfo(step=step.value, reason=reason),
        )

    def problem_text(self) -> str:
        return "; ".join(p.brief() for p in self.problems)


def _planned(item: ManifestItem) -> PlannedEnrollment:
    if isinstance(item, Enrollment):
        return PlannedEnrollment(
            key=item.key,
            source=item.source,
            identity=item.identity,
            voiceprint=item.voiceprint,
            owner=item.owner,
            space=item.space,
            enrollment=item,
            request_id=item.request_id,
            speaker_id=item.speaker_id,
            model=item.model,
        )
    # Rejected: the report row shows what was written ("Cust 7"), not an empty identity. (Its
    # `audios` stay empty: in a report they are the audios on the server, and it has none.)
    given = item.given
    return PlannedEnrollment(
        key=_rejected_key(item.source),
        source=item.source,
        identity=item.identity or cell(given.get("identity")),
        voiceprint=item.voiceprint or cell(given.get("voiceprint")),
        owner=item.owner or cell(given.get("owner")),
        space=item.space or cell(given.get("space")),
        enrollment=None,
        problems=list(item.problems),
        request_id=item.request_id,
        speaker_id=item.speaker_id,
        model=cell(given.get("model")) or None,
    )


def _rejected_key(source: str) -> str:
    return f"invalid@{source}"  # never a real key: it has no runnable identity


def _key(item: ManifestItem) -> str:
    return item.key if isinstance(item, Enrollment) else _rejected_key(item.source)


@dataclass
class JobInput:
    """The manifest of one job: checked as a file, its enrollments built when walked."""

    manifest: ManifestStream
    audio_root: Path
    # Where derived uploads (a channel, a mix, a conversion) are written; None: nowhere, so
    # an enrollment that needs one cannot run (see `use_work_dir`).
    work_dir: Path | None = None
    # The journal's derived files: derivation key → (sha256, size) (worker.audio.derive).
    derived_known: DerivedLookup = field(default_factory=dict)
    # Where s3:// audios are read from (worker.objects), and the largest one downloaded.
    objects: S3Store | None = None
    object_max_bytes: int = setting_default("s3_max_object_bytes")

    def use_work_dir(
        self, work_dir: Path, known: DerivedLookup, objects: S3Store | None = None
    ) -> None:
        """Derive and download into `work_dir`, trusting `known` (blocking: sweeps a killed
        run's leftovers, conversions and downloads alike)."""
        sweep_work_dir(work_dir)
        sweep_fetches(work_dir)
        self.work_dir = work_dir
        self.derived_known = known
        self.objects = objects

    @property
    def file_problems(self) -> list[Problem]:
        return self.manifest.file_problems

    @property
    def total(self) -> int:
        return self.manifest.total

    def planned(self, skip: Container[str] = frozenset()) -> PlanStream:
        """The enrollments in manifest order, not preflighted yet, minus the keys in `skip`
        (on resume the journal's index, asked one key at a time: no set of done keys)."""
        return PlanStream(self, skip)

    def preflight(self, planned: PlannedEnrollment) -> PlannedEnrollment:
        """Check one enrollment's files (blocking): sets its `task`, or its `problems`."""
        enrollment = planned.enrollment
        if enrollment is None:
            return planned
        if enrollment.migrate_from is not None:  # no file: the old voiceprint's audios
            planned.task = task_of(enrollment)
            return planned
        fetched = ObjectFetch()
        if has_objects(enrollment):
            fetched = fetch_objects(
                enrollment, self.manifest.file, self.objects, self.work_dir, self.object_max_bytes
            )
            if fetched.problems:
                planned.problems = fetched.problems
                return planned
        defaults = self.manifest.defaults
        result = preflight_enrollment(
            enrollment,
            self.audio_root,
            self.manifest.file,
            stereo=defaults.stereo,
            convert=defaults.convert,
            voice_margin=defaults.voice_margin,
            objects=fetched.files,
        )
        if not result.ok:
            fetched.discard()
            planned.problems = list(result.problems)
            return planned
        files, derived, problems = self._uploads(result)
        if problems:
            for d in derived:
                d.discard()
            fetched.discard()
            planned.problems = problems
            return planned
        planned.task = task_of(
            enrollment,
            files=files,
            derived=tuple(derived),
            local_voice=result.voice,
            scratch=tuple(fetched.files.values()),
        )
        planned.enrollment = None  # the task has what the driver needs; let the model go
        return planned

    def _write_retry(self, out: EncodedText, again: Iterator[ToActOn], comment: str) -> None:
        """The retry manifest in the input's kind: a job of enrollments (rejected ones as
        written, each with a comment saying why), or the migration of the identities left."""
        if (migration := self.manifest.migration) is not None:
            identities = (cell(_identity(item)) for item, _ in again)
            write_migration_retry(out, migration, identities, comment)
        elif self.manifest.kind == "voiceid":  # rejected requests cannot be written back
            requests = (item for item, _ in again if isinstance(item, Enrollment))
            write_voiceid_retry(out, requests, comment)
        else:
            entries = (retry_entry(item, outcome, self.audio_root) for item, outcome in again)
            write_retry_manifest(out, entries, self.audio_root, comment)

    def _uploads(
        self, result: EnrollmentPreflight
    ) -> tuple[tuple[VerifiedUpload, ...], list[DerivedUpload], list[Problem]]:
        """What each audio uploads: the file itself, or its derived copy, made now (blocking).

        A derivation that fails is a problem of that audio (`result`'s enrollment keeps it).
        """
        enrollment = result.enrollment
        problems: list[Problem] = []
        files: list[VerifiedUpload] = []
        derived: list[DerivedUpload] = []
        for i, (facts, derivation) in enumerate(zip(result.facts, result.derivations, strict=True)):
            if derivation is None:
                # The resolved path preflight opened and hashed: the upload opens that.
                files.append(VerifiedUpload(path=facts.path, size=facts.size, sha256=facts.sha256))
                continue
            reason: str | None = None
            if self.work_dir is None:
                reason = f"needs {derivation.describe()}, which only a running job does"
            else:
                try:
                    d = derived_upload(
                        facts.path,
                        enrollment.audio_names[i],
                        enrollment.channels[i],
                        derivation,
                        self.work_dir,
                        self.derived_known.get(derivation.key),
                    )
                except AudioUnreadable as exc:
                    reason = f"cannot be made {derivation.describe()}: {exc}"
                else:
                    derived.append(d)
                    files.append(d.upload)
                    if d.upload.size > MAX_UPLOAD_BYTES:
                        reason = f"{derivation.describe()}: " + too_large_reason(
                            d.upload.size, MAX_UPLOAD_BYTES
                        )
            if reason is not None:
                problems.append(audio_problem(enrollment, i, self.manifest.file, reason))
        return tuple(files), derived, problems

    def write_outputs(self, outcomes: OutcomeLookup, failures: Path, retry: Path) -> None:
        """The failures CSV and the retry manifest of a finished job (blocking).

        Both come from one walk of the manifest, in its order, asking `outcomes` (the journal's
        index) about each enrollment: one enrollment and its rows are held at a time, even
        when every one failed. Every enrollment that needs action (`needs_action`: failed,
        conflict, skipped…, whatever the cause, preflight included) is in both, each retry
        entry with a comment saying why. Nothing to act on: no walk, a header-only CSV, no
        retry file.
        """
        pending = outcomes.count() - outcomes.count(OK_OUTCOMES)
        manifest = self.manifest
        with atomic_writer(failures) as fh:
            csv_out = FailuresCsv(
                fh,
                manifest.csv_columns,
                delimiter=manifest.csv_delimiter,
                audio_root=self.audio_root,
                voiceid=manifest.kind == "voiceid",
            )

            def again() -> Iterator[ToActOn]:
                """The walk: each enrollment to act on goes to the CSV, and is yielded."""
                for item in manifest.items():
                    outcome = _to_act_on(outcomes, _key(item))
                    if outcome is not None:
                        csv_out.add(outcome, item)
                        yield item, outcome

            if pending:
                comment = f"retry of {manifest.file}: {pending} enrollments"
                with atomic_writer(retry) as retry_fh:
                    self._write_retry(EncodedText(retry_fh), again(), comment)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(retry)  # an older run's retry file of the same job
            csv_out.flush()


ToActOn = tuple[ManifestItem, EnrollmentOutcome]  # an enrollment that needs action, its outcome


def _identity(item: ManifestItem) -> object:
    return item.identity if item.identity is not None else item.given.get("identity")


def _to_act_on(outcomes: OutcomeLookup, key: str) -> EnrollmentOutcome | None:
    """The outcome of `key` when it needs action, else None (asked of the index only then)."""
    status = outcomes.status(key)
    if status is None or not needs_action(status):
        return None
    return outcomes.outcome(key)


def retry_entry(item: ManifestItem, outcome: EnrollmentOutcome, audio_root: Path) -> RetryEntry:
    """An enrollment of the retry manifest: the valid one itself, or a rejected one as written,
    led by a comment saying how it ended and why (the parser ignores `comment`)."""
    why = f"{outcome.outcome} at {outcome.error.step}" if outcome.error else outcome.outcome
    reason = outcome.error.reason if outcome.error else ""
    comment = f"{why} ({outcome.source}): {reason}" if reason else f"{why} ({outcome.source})"
    if isinstance(item, Enrollment):
        return {"comment": comment, **enrollment_json(item, audio_root)}
    return {"comment": comment, **item.given}


def task_of(enrollment: Enrollment, **uploads: Any) -> EnrollmentTask:
    """The enrollment as the driver runs it; `uploads`: its files, derived copies and voice
    as preflight found them (none for a migration, whose audios are on the server)."""
    return EnrollmentTask(
        key=enrollment.key,
        owner=enrollment.owner,
        space=enrollment.space,
        identity=enrollment.identity,
        voiceprint=enrollment.voiceprint,
        model=enrollment.model,
        min_audios=enrollment.min_audios,
        alias=enrollment.alias,
        create_identity=enrollment.create_identity,
        source=enrollment.source,
        file_names=enrollment.audio_names,
        existing=enrollment.existing,
        retire=enrollment.retire,
        migrate_from=enrollment.migrate_from,
        request_id=enrollment.request_id,
        speaker_id=enrollment.speaker_id,
        **{"files": (), **uploads},
    )


class OutcomeLookup(Protocol):
    """What the report outputs ask of the journal (`worker.journal.index.JournalIndex`)."""

    def count(self, outcomes: Iterable[str] | None = None, *, runnable: bool = False) -> int: ...

    def status(self, key: str) -> str | None: ...

    def outcome(self, key: str) -> EnrollmentOutcome | None: ...


class DerivedLookup(Protocol):
    """Derivation key → (sha256, size) journaled for it (`JournalIndex.get`, or a dict)."""

    def get(self, key: str, /) -> tuple[str, int] | None: ...


class PlanStream:
    """A job's enrollments, one at a time, shared by several preflight threads.

    The manifest's generator is not thread-safe, so taking the next item is serialised; the
    preflight itself (file reads, hashing) runs outside the lock.
    """

    def __init__(self, job: JobInput, skip: Container[str]) -> None:
        self._job = job
        self._skip = skip
        self._items = job.manifest.items()
        self._lock = threading.Lock()

    def next_planned(self) -> PlannedEnrollment | None:
        """The next enrollment not skipped, not preflighted; None at the end (blocking)."""
        with self._lock:
            for item in self._items:
                if _key(item) not in self._skip:
                    return _planned(item)
            return None

    def next_preflighted(self) -> PlannedEnrollment | None:
        """The next enrollment, preflighted; None at the end (blocking)."""
        planned = self.next_planned()
        return self._job.preflight(planned) if planned is not None else None


def load_job_input(manifest_path: Path, settings_defaults: ManifestDefaults) -> JobInput:
    """Read and check a manifest (blocking). Messages name the file by its base name."""
    manifest = open_manifest(manifest_path, settings_defaults, name=manifest_path.name)
    return JobInput(manifest=manifest, audio_root=settings_defaults.audio_root)
