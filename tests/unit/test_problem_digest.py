"""ProblemDigest: one problem shared by many enrollments is said once, with how many."""

from __future__ import annotations

from worker.manifest.digest import ProblemDigest
from worker.manifest.models import Problem


def problem(place: str, field: str = "owner", value: str | None = None) -> Problem:
    return Problem(file="m.csv", place=place, field=field, value=value, reason="is missing")


def test_the_same_problem_on_several_enrollments_is_one_line_with_a_count() -> None:
    digest = ProblemDigest(limit=10)
    for n in range(5):
        digest.add(problem(f"line {n + 2}"), n)
        digest.add(problem(f"line {n + 2}", "identity", f'"Cust {n}"'), n)
    out = [str(p) for p in digest.problems(total=5)]
    assert out == [
        "m.csv: owner: is missing (all 5 enrollments)",
        'm.csv line 2: identity "Cust 0": is missing',
        'm.csv line 3: identity "Cust 1": is missing',
        'm.csv line 4: identity "Cust 2": is missing',
        'm.csv line 5: identity "Cust 3": is missing',
        'm.csv line 6: identity "Cust 4": is missing',
    ]
    assert str(digest.problems(total=9)[0]) == (
        "m.csv: owner: is missing (5 of 9 enrollments, first at line 2)"
    )


def test_an_enrollment_counts_once_and_distinct_problems_are_bounded() -> None:
    digest = ProblemDigest(limit=2)
    digest.add(problem("line 2"), 0)
    digest.add(problem("line 3"), 0)  # the same enrollment again: still one
    digest.add(problem("line 4", "space"), 1)
    digest.add(problem("line 5", "model"), 1)  # a third distinct problem: counted, not kept
    digest.add(problem("line 6", "alias"), 2)
    assert [str(p) for p in digest.problems(total=3)] == [
        "m.csv line 2: owner: is missing",
        "m.csv line 4: space: is missing",
    ]
    assert digest.dropped == 2
