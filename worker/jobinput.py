"""A job's input: its manifest parsed and preflighted, ready for the engine.

Owns: the bridge from `manifest.py` / `validate.py` (what the producer asked for, and what is
wrong with it) to `enrollment.py` (what to run), plus the two outputs that speak the input's
own language: the failures CSV rows and the retry manifest. Preflight runs for the whole job
before the first API call, so a producer learns every local problem before any credit is
spent, and a manifest with nothing runnable goes to `failed/` untouched by the API.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.to_thread

from worker.enrollment import EnrollmentTask, outcome_record
from worker.enrollment_rules import Outcome, Step
from worker.fsutil import atomic_writer
from worker.journal import EnrollmentOutcome, ErrorInfo
from worker.manifest import (
    Enrollment,
    ManifestDefaults,
    ParsedManifest,
    Problem,
    RejectedEnrollment,
    read_manifest,
    retry_manifest_chunks,
)
from worker.report import failure_csv_rows
from worker.validate import preflight_enrollment

PREFLIGHT_THREADS = 4


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
    rows: tuple[dict[str, str], ...] = ()
    problems: list[Problem] = field(default_factory=list)
    task: EnrollmentTask | None = None

    def failed(self, step: Step, reason: str) -> EnrollmentOutcome:
        return outcome_record(
            self,
            Outcome.FAILED,
            model=self.enrollment.model if self.enrollment else None,
            attempts=0,
            error=ErrorInfo(step=step.value, reason=reason),
        )

    def problem_text(self) -> str:
        return "; ".join(p.brief() for p in self.problems)


def _planned(item: Enrollment | RejectedEnrollment) -> PlannedEnrollment:
    if isinstance(item, Enrollment):
        return PlannedEnrollment(
            key=item.key,
            source=item.source,
            identity=item.identity,
            voiceprint=item.voiceprint,
            owner=item.owner,
            space=item.space,
            enrollment=item,
            rows=item.rows,
        )
    return PlannedEnrollment(
        key=f"invalid@{item.source}",  # never a real key: it has no runnable identity
        source=item.source,
        identity=item.identity or "",
        voiceprint=item.voiceprint or "",
        owner=item.owner or "",
        space=item.space or "",
        enrollment=None,
        rows=item.rows,
        problems=list(item.problems),
    )


@dataclass
class JobInput:
    """The parsed manifest and its enrollments in manifest order."""

    parsed: ParsedManifest
    audio_root: Path
    enrollments: list[PlannedEnrollment]

    @property
    def file_problems(self) -> list[Problem]:
        return self.parsed.file_problems

    @property
    def runnable(self) -> int:
        return sum(1 for p in self.enrollments if p.task is not None)

    def all_problems(self) -> list[Problem]:
        out = list(self.parsed.file_problems)
        for planned in self.enrollments:
            out.extend(planned.problems)
        return out

    def failure_rows(self, rows: Iterable[EnrollmentOutcome]) -> Iterator[list[str]]:
        by_key = {p.key: p for p in self.enrollments}

        def original(outcome: EnrollmentOutcome) -> list[dict[str, str]]:
            planned = by_key.get(outcome.key)
            return list(planned.rows) if planned is not None else []

        columns = self.parsed.csv_columns
        return failure_csv_rows(rows, columns, original if columns else None)

    def write_retry_manifest(self, path: Path, keys: set[str]) -> bool:
        """Write a manifest of the enrollments under `keys` that can run again; False if none."""
        retry = [
            p.enrollment for p in self.enrollments if p.key in keys and p.enrollment is not None
        ]
        if not retry:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # an older run's retry file of the same job
            return False
        comment = f"retry of {self.parsed.file}: {len(retry)} enrollments"
        with atomic_writer(path) as fh:
            for chunk in retry_manifest_chunks(retry, self.audio_root, comment):
                fh.write(chunk.encode("utf-8"))
        return True


def load_job_input(manifest_path: Path, settings_defaults: ManifestDefaults) -> JobInput:
    """Parse a manifest (blocking). Messages name the file by its base name, as dropped."""
    parsed = read_manifest(manifest_path, settings_defaults, name=manifest_path.name)
    items: list[Enrollment | RejectedEnrollment] = [*parsed.enrollments, *parsed.rejected]
    items.sort(key=lambda e: e.position)
    return JobInput(
        parsed=parsed,
        audio_root=settings_defaults.audio_root,
        enrollments=[_planned(item) for item in items],
    )


def _preflight_one(planned: PlannedEnrollment, job: JobInput) -> None:
    enrollment = planned.enrollment
    if enrollment is None:
        return
    result = preflight_enrollment(enrollment, job.audio_root, job.parsed.file)
    if not result.ok:
        planned.problems = list(result.problems)
        return
    planned.task = EnrollmentTask(
        key=enrollment.key,
        owner=enrollment.owner,
        space=enrollment.space,
        identity=enrollment.identity,
        voiceprint=enrollment.voiceprint,
        model=enrollment.model,
        min_audios=enrollment.min_audios,
        alias=enrollment.alias,
        create_identity=enrollment.create_identity,
        files=tuple(
            (f.sha256, path) for f, path in zip(result.facts, enrollment.audios, strict=True)
        ),
        source=enrollment.source,
    )


async def preflight_all(job: JobInput, skip: set[str] | frozenset[str] = frozenset()) -> None:
    """Preflight every enrollment not in `skip`, a few files at a time in worker threads."""
    # No cross-enrollment cache: facts of 100 000 files would sit in memory for a rare saving.
    pending = iter([p for p in job.enrollments if p.key not in skip])

    async def worker() -> None:
        for planned in pending:  # a shared iterator: each enrollment is taken once
            await anyio.to_thread.run_sync(_preflight_one, planned, job)

    async with anyio.create_task_group() as tg:
        for _ in range(PREFLIGHT_THREADS):
            tg.start_soon(worker)
