"""The text form of `enroller plan`: a file's figures and the total, as a person reads them.

Owns: the wording and units (MiB, durations, credits per owner) of the plan's lines. Pure: it
formats the models `worker.commands.plan` computes; the problems and warnings are printed by the
run.
"""

from __future__ import annotations

from collections.abc import Iterator

from worker.commands.plan_models import ManifestPlan, PlanResult


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


def file_lines(plan: ManifestPlan, rate: str) -> Iterator[str]:
    """A file's figures (its problems and warnings are printed before them)."""
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
        if plan.s3_files:
            derived += f"; {plan.s3_files} in S3, not read: sizes unknown, not counted"
        yield (
            f"  upload {_count(plan.audio_files, 'audio file')}, {_mib(plan.upload_bytes)} "
            f"({plan.audio_seconds:.1f} s of audio{derived})"
        )
        yield (
            f"  {plan.requests} requests ({plan.usage_check_requests} for the usage check), "
            f"{_count(plan.credits, 'credit')} ({_owners(plan.credits_by_owner)}), "
            f"{_duration(plan.seconds_at_rate_limit)} at {rate}"
        )


def total_lines(result: PlanResult, rate: str) -> Iterator[str]:
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
        yield f"a re-run with every enrollment already done: {t.rerun_requests} requests, 0 credits"
