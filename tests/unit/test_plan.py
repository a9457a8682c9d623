"""The plan's arithmetic, from plain values (the e2e test compares it with a real run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.audiogen import write_audio
from tests.support import max_requests_per_step
from worker.commands.plan import CostSum, plan_paths, plan_totals
from worker.commands.plan_models import EnrollmentCost, ManifestPlan
from worker.config.settings import Settings, setting_default
from worker.enrollment.requests import (
    WORKER_START_REQUESTS,
    enrollment_requests,
    usage_check_requests,
)
from worker.enrollment.view import MAX_ATTEMPTS_PER_STEP, Limits
from worker.manifest.models import ManifestDefaults

INLINE_MAX = setting_default("inline_upload_max_bytes")


def manifest_plan(
    file: str, costs: list[EnrollmentCost], rate_limit: float, total: int | None = None
) -> ManifestPlan:
    """One manifest's figures summed as `plan_file` sums them (`CostSum`), from plain costs."""
    summed = CostSum(inline_max_bytes=INLINE_MAX)
    for c in costs:
        summed.add(c)
    return summed.plan(file, rate_limit, total=total)


def cost(owner: str = "demo", files: int = 1, size: int = 1000) -> EnrollmentCost:
    return EnrollmentCost(
        owner=owner, space="main", model="phone/v1", file_sizes=(size,) * files, audio_seconds=5.0
    )


@pytest.mark.parametrize(("computes", "pages"), [(0, 0), (1, 1), (50, 1), (51, 2), (120, 3)])
def test_usage_check_reads_one_page_per_50_computes(computes: int, pages: int) -> None:
    assert usage_check_requests(computes) == pages


def test_a_step_is_tried_four_times_in_all_by_default() -> None:
    assert Limits().max_attempts == MAX_ATTEMPTS_PER_STEP == 4


def test_the_max_retries_setting_says_what_one_step_may_cost() -> None:
    field = Settings.model_fields["max_retries"]
    text = field.description or ""
    assert text.startswith("Resends of one request")
    assert f"tried {MAX_ATTEMPTS_PER_STEP} times in all" in text
    assert f"up to {MAX_ATTEMPTS_PER_STEP} × (1 + max_retries) requests" in text
    assert f"{max_requests_per_step(field.default)} by default" in text


def test_more_audios_cost_more_requests() -> None:
    one, two = enrollment_requests([10], INLINE_MAX), enrollment_requests([10, 10], INLINE_MAX)
    assert 0 < one < two
    assert (
        enrollment_requests([10, 10, 10], INLINE_MAX) - two == two - one
    )  # a constant cost per audio


def test_manifest_figures() -> None:
    costs = [cost(), cost(files=2, size=500), cost(owner="acme")]
    plan = manifest_plan("m.csv", costs, rate_limit=10.0, total=5)
    assert (plan.enrollments, plan.runnable, plan.rejected) == (5, 3, 2)
    assert plan.audio_files == 4
    assert plan.upload_bytes == 3000
    assert plan.credits == 3 and plan.credits_by_owner == {"acme": 1, "demo": 2}
    # One usage-check page per owner that computed anything.
    assert plan.usage_check_requests == 2
    expected = (
        2 * enrollment_requests([1000], INLINE_MAX)
        + enrollment_requests([500, 500], INLINE_MAX)
        + 2
    )
    assert plan.requests == expected
    assert plan.seconds_at_rate_limit == pytest.approx(expected / 10.0)
    assert plan.spaces == ["acme/main", "demo/main"]


def test_totals_add_the_worker_start_once() -> None:
    a = manifest_plan("a.csv", [cost()], rate_limit=5.0)
    b = manifest_plan("b.csv", [cost(), cost(owner="acme")], rate_limit=5.0)
    totals = plan_totals([a, b], rate_limit=5.0)
    assert totals.requests == a.requests + b.requests + WORKER_START_REQUESTS
    assert totals.credits_by_owner == {"acme": 1, "demo": 2}
    assert plan_totals([], rate_limit=5.0).requests == 0


def test_a_manifest_with_nothing_runnable_costs_nothing() -> None:
    plan = manifest_plan("bad.csv", [], rate_limit=5.0, total=3)
    assert (plan.requests, plan.credits, plan.rejected) == (0, 0, 3)


def test_the_inline_limit_setting_decides_how_uploads_are_counted(tmp_path: Path) -> None:
    """`enroller plan` counts as the worker runs: ENROLLER_INLINE_UPLOAD_MAX_BYTES, not 8 MiB."""
    write_audio(tmp_path / "a.wav", 5.0, 0.2, 8000)
    manifest = tmp_path / "m.csv"
    manifest.write_text("identity,audio\na,a.wav\n")
    figures = {}
    for limit in (8 * 1024 * 1024, 0):
        settings = Settings(
            api_url="http://127.0.0.1:9/v1",
            api_key="k",
            owner="demo",
            space="main",
            queue_dir=tmp_path / "q",
            audio_root=tmp_path,
            inline_upload_max_bytes=limit,
        )
        defaults = ManifestDefaults.from_settings(settings)
        assert defaults.inline_upload_max_bytes == limit
        [plan] = plan_paths([str(manifest)], defaults, 10.0).files
        figures[limit] = plan.requests - plan.usage_check_requests
    assert figures == {8 * 1024 * 1024: 5, 0: 6}  # inline create, or create + raw upload
