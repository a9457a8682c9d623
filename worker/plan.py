"""`enroller plan`: what a run of these manifests will cost, before any request is made.

Owns: the cost figures of a manifest (enrollments, audio files and bytes to upload, requests,
credits, time at the rate limit) and their text and JSON forms. The arithmetic (`plan_manifest`,
`plan_totals`) is pure and takes its request counts from `worker.request_plan`, the one
description of what the engine sends; `plan_paths` does the local I/O (parse and preflight,
exactly as `enroller validate` does) and hands the runnable enrollments to it.

It never makes a network call and never writes a file. The figures assume every enrollment is
new: a re-run of an enrolled identity costs at most 2 reads and no credit, which only the API
can tell (`enroller check` reads the API, this module never does).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import TextIO

from pydantic import BaseModel, ConfigDict, Field, computed_field

from worker.manifest import ManifestDefaults, Problem
from worker.request_plan import (
    WORKER_START_REQUESTS,
    enrollment_credits,
    enrollment_requests,
    usage_check_requests,
)
from worker.validate import EnrollmentPreflight, checked_manifests, checked_paths
from worker.voice_rule import VoiceVerdict


class EnrollmentCost(BaseModel):
    """One runnable enrollment, reduced to what it costs."""

    model_config = ConfigDict(frozen=True)

    owner: str
    space: str
    model: str
    file_sizes: tuple[int, ...]
    audio_seconds: float
    derived_files: int = 0  # uploaded as a mono FLAC made first (worker.derive): size differs
    voice_near: bool = False  # a file near the voice rule: the server may refuse it (no compute)


class ManifestPlan(BaseModel):
    """The figures of one manifest file."""

    file: str
    kind: str | None = None
    enrollments: int = 0  # every enrollment the file names
    runnable: int = 0  # those that pass local preflight
    voice_near: int = 0  # runnable ones with a file near the voice rule: the server decides
    rejected: int = 0  # those that preflight already rejects: no request, no credit
    audio_files: int = 0
    upload_bytes: int = 0  # of the files as they are; a derived FLAC's own size is not known yet
    derived_files: int = 0
    audio_seconds: float = 0.0
    requests: int = 0  # enrollments plus the job's usage check
    usage_check_requests: int = 0
    credits: int = 0
    credits_by_owner: dict[str, int] = Field(default_factory=dict)
    spaces: list[str] = Field(default_factory=list)  # "owner/space", sorted
    models: list[str] = Field(default_factory=list)
    seconds_at_rate_limit: float = 0.0
    problems: list[Problem] = Field(default_factory=list)  # the rejected rows, and why
    warnings: list[Problem] = Field(default_factory=list)


class PlanTotals(BaseModel):
    """Every manifest together, as one worker start runs them."""

    enrollments: int = 0
    runnable: int = 0
    rejected: int = 0
    audio_files: int = 0
    upload_bytes: int = 0
    requests: int = 0  # every manifest's, plus the worker start's
    worker_start_requests: int = WORKER_START_REQUESTS
    credits: int = 0
    credits_by_owner: dict[str, int] = Field(default_factory=dict)
    seconds_at_rate_limit: float = 0.0


class PlanResult(BaseModel):
    """The outcome of `enroller plan PATH…`, as `--json` prints it."""

    audio_root: str
    rate_limit: float  # requests per second (ENROLLER_RATE_LIMIT)
    assumption: str = (
        "every enrollment is new; a re-run of an enrolled identity costs at most 2 reads "
        "and no credit"
    )
    files: list[ManifestPlan] = Field(default_factory=list)
    totals: PlanTotals = Field(default_factory=PlanTotals)
    errors: list[Problem] = Field(default_factory=list)  # about the arguments, not a file

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not self.errors and all(not f.problems for f in self.files)


# --- pure arithmetic ---------------------------------------------------------------------------


def plan_manifest(
    file: str,
    costs: Sequence[EnrollmentCost],
    rate_limit: float,
    *,
    kind: str | None = None,
    total: int | None = None,
    problems: Sequence[Problem] = (),
    warnings: Sequence[Problem] = (),
) -> ManifestPlan:
    """The figures of one manifest from its runnable enrollments (pure).

    `total` is how many enrollments the file names (runnable ones plus rejected ones).
    """
    credits_by_owner: Counter[str] = Counter()
    requests = 0
    for cost in costs:
        requests += enrollment_requests(cost.file_sizes)
        credits_by_owner[cost.owner] += enrollment_credits()
    # The usage check reads each owner's records once per job: one page per 50 computes.
    usage = sum(usage_check_requests(n) for n in credits_by_owner.values())
    requests += usage
    enrollments = len(costs) if total is None else total
    return ManifestPlan(
        file=file,
        kind=kind,
        enrollments=enrollments,
        runnable=len(costs),
        rejected=enrollments - len(costs),
        audio_files=sum(len(c.file_sizes) for c in costs),
        upload_bytes=sum(sum(c.file_sizes) for c in costs),
        derived_files=sum(c.derived_files for c in costs),
        voice_near=sum(c.voice_near for c in costs),
        audio_seconds=round(sum(c.audio_seconds for c in costs), 3),
        requests=requests,
        usage_check_requests=usage,
        credits=sum(credits_by_owner.values()),
        credits_by_owner=dict(sorted(credits_by_owner.items())),
        spaces=sorted({f"{c.owner}/{c.space}" for c in costs}),
        models=sorted({c.model for c in costs}),
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
        derived_files=sum(d is not None for d in pre.derivations),
        voice_near=any(v.verdict is VoiceVerdict.NEAR for v in pre.voice),
    )


# --- local I/O: parse and preflight, as `enroller validate` does -------------------------------


def plan_paths(args: Sequence[str], defaults: ManifestDefaults, rate_limit: float) -> PlanResult:
    """Parse and preflight every manifest named by `args`, and cost it; no network."""
    paths, errors = checked_paths(args, defaults)
    result = PlanResult(audio_root=str(defaults.audio_root), rate_limit=rate_limit, errors=errors)
    for checked, file_result in checked_manifests(paths, defaults):
        costs = [enrollment_cost(pre) for pre in checked if pre.ok]
        result.files.append(
            plan_manifest(
                file_result.file,
                costs,
                rate_limit,
                kind=file_result.kind,
                total=file_result.enrollments,
                problems=file_result.errors,
                warnings=file_result.warnings,
            )
        )
    result.totals = plan_totals(result.files, rate_limit)
    return result


# --- output --------------------------------------------------------------------------------------


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _owners(credits_by_owner: dict[str, int]) -> str:
    return ", ".join(f"{owner} {n}" for owner, n in credits_by_owner.items())


def render_text(result: PlanResult) -> Iterator[str]:
    """Rejected rows first (one line each), then each file's figures, then the total."""
    for problem in result.errors:
        yield str(problem)
    rate = f"{result.rate_limit:g} requests/s"
    for plan in result.files:
        for problem in plan.problems:
            yield str(problem)
        for warning in plan.warnings:
            yield str(warning)
        near = (
            f" ({plan.voice_near} near the voice rule: the server may refuse them, and their "
            "computes are then not spent)"
            if plan.voice_near
            else ""
        )
        yield (
            f"{plan.file}: {_count(plan.enrollments, 'enrollment')}: {plan.runnable} to run{near}, "
            f"{plan.rejected} rejected by preflight (no request, no credit)"
        )
        if plan.runnable:
            derived = (
                f"; {plan.derived_files} made into mono FLAC first, counted at the source's size"
                if plan.derived_files
                else ""
            )
            yield (
                f"  upload {_count(plan.audio_files, 'audio file')}, {_mib(plan.upload_bytes)} "
                f"({plan.audio_seconds:.1f} s of audio{derived})"
            )
            yield (
                f"  {plan.requests} requests ({plan.usage_check_requests} for the usage check), "
                f"{_count(plan.credits, 'credit')} ({_owners(plan.credits_by_owner)}), "
                f"{_duration(plan.seconds_at_rate_limit)} at {rate}"
            )
    t = result.totals
    if result.files:
        yield (
            f"total: {_count(t.enrollments, 'enrollment')} ({t.runnable} to run), "
            f"{_mib(t.upload_bytes)} to upload, {t.requests} requests "
            f"(with {t.worker_start_requests} at worker start), "
            f"{_count(t.credits, 'credit')}, at least {_duration(t.seconds_at_rate_limit)} "
            f"at {rate} (ENROLLER_RATE_LIMIT)"
        )
        yield f"assuming {result.assumption}"


def run_plan(
    args: Sequence[str],
    defaults: ManifestDefaults,
    rate_limit: float,
    as_json: bool,
    out: TextIO | None = None,
) -> int:
    """`enroller plan`: print the figures; 0 when every enrollment can run, 1 otherwise."""
    stream = out if out is not None else sys.stdout
    result = plan_paths(args, defaults, rate_limit)
    if as_json:
        stream.write(result.model_dump_json(indent=2) + "\n")
    else:
        for line in render_text(result):
            stream.write(line + "\n")
    return 0 if result.ok else 1
