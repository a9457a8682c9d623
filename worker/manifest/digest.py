"""Problems folded by what they say: one shared by many enrollments is said once, with a count.

Owns: `ProblemDigest`. A walk adds each problem with the enrollment it belongs to; the same
problem (field, value, reason) found on several enrollments is kept once, with how many
enrollments have it, so an export of 10 000 rows that all lack an owner and a space prints two
lines, not 20 000. Problems that differ (a handle like `Cust 7` on one row) stay one line each.
Bounded: at most `limit` distinct problems are kept, the rest only counted (`dropped`).

Pure: problems in, problems out.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.manifest.models import Problem

_Key = tuple[str, str, str | None, str, str]  # file, field, value, reason, severity


@dataclass
class _Group:
    first: Problem  # where it was found first, as found
    enrollments: int  # how many enrollments have it
    last: int  # the last enrollment counted (one enrollment counts once)


class ProblemDigest:
    """Problems as a walk finds them, folded by what they say (see the module docstring)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._groups: dict[_Key, _Group] = {}
        self.dropped = 0  # problems found beyond `limit` distinct ones, not kept

    def add(self, problem: Problem, enrollment: int) -> None:
        """One problem of the `enrollment`-th enrollment of the walk (0-based)."""
        key = (problem.file, problem.field, problem.value, problem.reason, problem.severity)
        group = self._groups.get(key)
        if group is None:
            if len(self._groups) >= self._limit:
                self.dropped += 1
                return
            self._groups[key] = _Group(problem, 1, enrollment)
        elif group.last != enrollment:
            group.enrollments += 1
            group.last = enrollment

    def problems(self, total: int) -> list[Problem]:
        """The problems in the order first found; one found on several of the `total`
        enrollments says how many, and where it was first (or that every one has it)."""
        out = []
        for group in self._groups.values():
            first, n = group.first, group.enrollments
            if n == 1:
                out.append(first)
                continue
            where = f"all {n} enrollments" if n == total else f"{n} of {total} enrollments"
            if n != total and first.place:
                where += f", first at {first.place}"
            folded = first.model_copy(update={"place": "", "reason": f"{first.reason} ({where})"})
            out.append(folded)
        return out
