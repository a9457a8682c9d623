"""`enroller plan`: what a run of these manifests will cost, before any request is made.

Owns: the cost figures of a manifest (enrollments, audio files and bytes to upload, requests,
credits, time at the rate limit) and their text and JSON forms. The arithmetic (`plan_manifest`,
`plan_totals`) is pure and takes its request counts from `worker.enrollment.requests`, the one
description of what the engine sends; `plan_paths` does the local I/O (parse and preflight,
exactly as `enroller validate` does) and hands the runnable enrollments to it.

It never makes a network call and never writes a file. The figures assume every enrollment is
new: a re-run of an enrollment already done costs 3 requests and no credit, which only the API
can tell (`enroller check` reads the API, this module never does).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from worker.audio.voice_rule import VoiceVerdict
from worker.base.exitcodes import EXIT_FAILURES, EXIT_OK
from worker.base.streamout import Spool, StreamedObject
from worker.commands.plan_models import (
    EnrollmentCost,
    ManifestPlan,
    MigrateAll,
    PlanResult,
    PlanTotals,
)
from worker.commands.plan_text import file_lines, total_lines
from worker.commands.validate import Checks, Emit, check_stream, checked_paths, json_file_entry
from worker.enrollment.requests import (
    MIGRATED_REQUESTS,
    SWAP_PROBE_REQUESTS,
    WORKER_START_REQUESTS,
    enrollment_credits,
    enrollment_requests,
    migration_requests,
    unchanged_requests,
    usage_check_requests,
)
from worker.manifest.models import ManifestDefaults, Problem
from worker.manifest.preflight import AudioCache, EnrollmentPreflight, bounded_cache
from worker.manifest.read import open_manifest
from worker.manifest.stream import ManifestStream
from worker.objects.uri import is_object_path

# --- pure arithmetic ---------------------------------------------------------------------------


@dataclass
class CostSum:
    """The figures of runnable enrollments, summed one at a time (pure): no list is kept.

    `inline_max_bytes`: ENROLLER_INLINE_UPLOAD_MAX_BYTES, so uploads are counted as run.
    """

    inline_max_bytes: int
    credits_by_owner: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    rerun_requests: int = 0  # the same enrollments, every one already done
    runnable: int = 0
    audio_files: int = 0
    upload_bytes: int = 0
    derived_files: int = 0
    s3_files: int = 0
    voice_near: int = 0
    audio_seconds: float = 0.0
    spaces: set[str] = field(default_factory=set)
    models: set[str] = field(default_factory=set)
    swaps: bool = False  # a job that swaps asks once whether the API renames voiceprints

    def add(self, cost: EnrollmentCost) -> None:
        if cost.migration:  # one audio per voiceprint assumed: the plan reads no server
            self.requests += migration_requests(1, cost.retire)
            self.rerun_requests += MIGRATED_REQUESTS
            self.swaps = True
        else:
            # An S3 object's size is unknown here: counted as a two-step (create + raw) upload.
            unknown = (self.inline_max_bytes + 1,) * cost.s3_files
            self.requests += enrollment_requests(cost.file_sizes + unknown, self.inline_max_bytes)
            self.rerun_requests += unchanged_requests(len(cost.file_sizes) + cost.s3_files)
        self.credits_by_owner[cost.owner] += enrollment_credits()
        self.runnable += 1
        self.audio_files += len(cost.file_sizes) + cost.s3_files
        self.s3_files += cost.s3_files
        self.upload_bytes += sum(cost.file_sizes)
        self.derived_files += cost.derived_files
        self.voice_near += cost.voice_near
        self.audio_seconds += cost.audio_seconds
        self.spaces.add(f"{cost.owner}/{cost.space}")
        self.models.add(cost.model)

    def plan(
        self,
        file: str,
        rate_limit: float,
        *,
        kind: str | None = None,
        total: int | None = None,
        problems: Sequence[Problem] = (),
        warnings: Sequence[Problem] = (),
    ) -> ManifestPlan:
        # The usage check reads each owner's records once per job: one page per 50 computes.
        usage = sum(usage_check_requests(n) for n in self.credits_by_owner.values())
        requests = self.requests + usage + (SWAP_PROBE_REQUESTS if self.swaps else 0)
        enrollments = self.runnable if total is None else total
        return ManifestPlan(
            file=file,
            kind=kind,
            enrollments=enrollments,
            runnable=self.runnable,
            rejected=enrollments - self.runnable,
            audio_files=self.audio_files,
            upload_bytes=self.upload_bytes,
            derived_files=self.derived_files,
            s3_files=self.s3_files,
            voice_near=self.voice_near,
            audio_seconds=round(self.audio_seconds, 3),
            requests=requests,
            rerun_requests=self.rerun_requests,
            usage_check_requests=usage,
            credits=sum(self.credits_by_owner.values()),
            credits_by_owner=dict(sorted(self.credits_by_owner.items())),
            spaces=sorted(self.spaces),
            models=sorted(self.models),
            seconds_at_rate_limit=round(requests / rate_limit, 3),
            problems=list(problems),
            warnings=list(warnings),
        )


def plan_totals(plans: Sequence[ManifestPlan], rate_limit: float) -> PlanTotals:
    """All manifests run by one worker start (pure): their sums plus the start's requests."""
    by_owner: Counter[str] = Counter()
    for plan in plans:
        by_owner.update(plan.credits_by_owner)
    requests = sum(p.requests for p in plans) + (WORKER_START_REQUESTS if plans else 0)
    return PlanTotals(
        enrollments=sum(p.enrollments for p in plans),
        runnable=sum(p.runnable for p in plans),
        rejected=sum(p.rejected for p in plans),
        audio_files=sum(p.audio_files for p in plans),
        upload_bytes=sum(p.upload_bytes for p in plans),
        requests=requests,
        rerun_requests=sum(p.rerun_requests for p in plans)
        + (WORKER_START_REQUESTS if plans else 0),
        worker_start_requests=WORKER_START_REQUESTS if plans else 0,
        credits=sum(by_owner.values()),
        credits_by_owner=dict(sorted(by_owner.items())),
        seconds_at_rate_limit=round(requests / rate_limit, 3),
    )


def enrollment_cost(pre: EnrollmentPreflight) -> EnrollmentCost:
    """What one enrollment that passed preflight costs (pure)."""
    e = pre.enrollment
    return EnrollmentCost(
        owner=e.owner,
        space=e.space,
        model=e.model,
        file_sizes=tuple(f.size for f in pre.facts),
        audio_seconds=sum(f.duration for f in pre.facts),
        s3_files=sum(is_object_path(p) for p in e.audios),  # preflight read none of them here
        derived_files=sum(d is not None for d in pre.derivations),
        voice_near=any(v.verdict is VoiceVerdict.NEAR for v in pre.voice),
        migration=e.migrate_from is not None,
        retire=e.retire,
    )


# --- local I/O: parse and preflight, as `enroller validate` does -------------------------------


def plan_file(
    path: Path,
    name: str,
    defaults: ManifestDefaults,
    rate_limit: float,
    emit: Callable[[Problem], None],
    warn: Callable[[Problem], None],
    cache: AudioCache,
) -> tuple[ManifestPlan, int]:
    """Parse, preflight and cost one manifest, handing each problem on as it is found.

    Returns the figures (without the problems and the preflight's warnings) and how many
    problems there were.
    """
    summed = CostSum(inline_max_bytes=defaults.inline_upload_max_bytes)
    manifest = open_manifest(path, defaults, name=name)
    found = check_stream(
        manifest,
        Checks.of(defaults),
        emit,
        warn,
        cache,
        valid=lambda pre: summed.add(enrollment_cost(pre)),
    )
    warnings = [*found.warnings, *_migration_notes(manifest, found.file, rate_limit)]
    plan = summed.plan(
        found.file, rate_limit, kind=found.kind, total=found.enrollments, warnings=warnings
    )
    plan.migrate_all = _migrate_all(manifest)
    if plan.migrate_all is not None:
        plan.spaces = sorted({*plan.spaces, plan.migrate_all.space})
        plan.models = sorted({*plan.models, plan.migrate_all.to_model})
    return plan, found.problem_count


def _migrate_all(manifest: ManifestStream) -> MigrateAll | None:
    migration = manifest.migration
    if migration is None or migration.identities != "all":
        return None
    return MigrateAll(
        space=f"{migration.owner}/{migration.space}",
        from_model=migration.from_model,
        to_model=migration.to_model,
        requests_per_identity=migration_requests(1, migration.retire),
    )


def _migration_notes(manifest: ManifestStream, file: str, rate_limit: float) -> list[Problem]:
    """What a plan of a migration cannot count offline, said once."""
    migration = manifest.migration
    if migration is None:
        return []
    each = migration_requests(1, migration.retire)
    reason = (
        f"moves {migration.voiceprint!r} from {migration.from_model} to {migration.to_model} "
        f"from the audio on the server: no upload; per identity {each} requests (one audio "
        f"each; +1 per further audio) and 1 credit, {each / rate_limit:.2f} s at the rate limit"
    )
    if migration.identities == "all":
        reason += (
            "; identities: all are listed when the job runs (enroller check counts them), "
            "so the figures below leave them out"
        )
    return [Problem(file=file, field="migrate", reason=reason, severity="warning")]


def plan_paths(
    args: Sequence[str],
    defaults: ManifestDefaults,
    rate_limit: float,
    emit: Callable[[Problem], None] | None = None,
) -> PlanResult:
    """Parse, preflight and cost every manifest named by `args`; no network.

    Every problem and warning is kept in the result, unless `emit` is given: then each problem
    goes to it as found and only the parser's few warnings are kept (`enroller check`, which
    needs the figures, not a million rows of problems). The command itself streams.
    """
    paths, errors = checked_paths(args, defaults)
    result = PlanResult(audio_root=str(defaults.audio_root), rate_limit=rate_limit, errors=errors)
    cache = bounded_cache()
    for path, name in paths:
        kept: list[Problem] = []
        warned: list[Problem] = []
        error, warn = (kept.append, warned.append) if emit is None else (emit, _ignore)
        plan, _ = plan_file(path, name, defaults, rate_limit, error, warn, cache)
        plan.problems, plan.warnings = kept, [*plan.warnings, *warned]
        result.files.append(plan)
    result.totals = plan_totals(result.files, rate_limit)
    return result


def _ignore(_: Problem) -> None:
    return None


# --- output --------------------------------------------------------------------------------------


def run_plan(
    args: Sequence[str],
    defaults: ManifestDefaults,
    rate_limit: float,
    as_json: bool,
    out: TextIO | None = None,
) -> int:
    """`enroller plan`: print the figures as they are found; 0 when every enrollment can run.

    Rejected rows first (one line each, as found), then each file's warnings and figures, then
    the total; or the `PlanResult` document, each file's problems written as found.
    """
    stream = out if out is not None else sys.stdout
    paths, errors = checked_paths(args, defaults)
    result = PlanResult(audio_root=str(defaults.audio_root), rate_limit=rate_limit, errors=errors)
    problems = (_json_run if as_json else _text_run)(paths, result, defaults, stream)
    return EXIT_OK if not errors and not problems else EXIT_FAILURES


def _text_run(
    paths: Sequence[tuple[Path, str]], result: PlanResult, defaults: ManifestDefaults, out: TextIO
) -> int:
    rate = f"{result.rate_limit:g} requests/s"
    for problem in result.errors:
        out.write(f"{problem}\n")
    cache, problems = bounded_cache(), 0
    for path, name in paths:
        spool = Spool(Problem)
        plan, n = plan_file(path, name, defaults, result.rate_limit, _line(out), spool.add, cache)
        for line in [*(str(w) for w in plan.warnings), *(str(w) for w in spool.replay())]:
            out.write(line + "\n")
        for line in file_lines(plan, rate):
            out.write(line + "\n")
        plan.warnings = []
        result.files.append(plan)
        problems += n
    result.totals = plan_totals(result.files, result.rate_limit)
    for line in total_lines(result, rate):
        out.write(line + "\n")
    return problems


def _line(out: TextIO) -> Callable[[Problem], None]:
    def write(problem: Problem) -> None:
        out.write(f"{problem}\n")

    return write


def _json_run(
    paths: Sequence[tuple[Path, str]], result: PlanResult, defaults: ManifestDefaults, out: TextIO
) -> int:
    doc = StreamedObject(out)
    doc.array("files")
    cache, problems = bounded_cache(), 0
    for path, name in paths:

        def cost(emit: Emit, warn: Emit, path: Path = path, name: str = name) -> ManifestPlan:
            return plan_file(path, name, defaults, result.rate_limit, emit, warn, cache)[0]

        plan, n = json_file_entry(doc, "problems", cost)
        result.files.append(plan)
        problems += n
    result.totals = plan_totals(result.files, result.rate_limit)
    doc.array("errors", result.errors)
    ok = not result.errors and not problems
    doc.finish(result, exclude={"files", "errors", "ok"}, extra={"ok": ok})
    out.write("\n")
    return problems
