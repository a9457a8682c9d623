"""Hypothesis profiles: a sensible budget for `make test`, a large one for `make fuzz`.

`HYPOTHESIS_PROFILE` picks one (default: "default"). Examples vary from run to run (nothing is
derandomized); every failing example found is kept in `<repo>/.hypothesis/examples` (git-ignored)
and replayed first on the next run, so a failure seen once stays reproducible on that machine.
No deadline: a loaded machine must not turn a slow example into a failure.

Property tests that need no special budget simply use `@given` (the profile governs them). A
property test whose example is expensive (a real worker process per example) sizes itself with
`examples(default=…, fuzz=…)` and `timeout_for(…)`.

`make fuzz` runs every test that uses Hypothesis: the conftest marks each one `fuzz` at
collection, so new property tests are picked up without anyone remembering to mark them.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
FUZZING = PROFILE == "fuzz"
DATABASE = Path(__file__).resolve().parent.parent / ".hypothesis" / "examples"

_COMMON = dict(
    database=DirectoryBasedExampleDatabase(str(DATABASE)),
    deadline=None,
    derandomize=False,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("default", max_examples=100, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("fuzz", max_examples=5000, **_COMMON)  # type: ignore[arg-type]
settings.load_profile(PROFILE)


def examples(default: int, fuzz: int) -> int:
    """The example budget of an expensive property test under the current profile."""
    return fuzz if FUZZING else default


def timeout_for(n: int, per_example: float, slack: float = 60.0) -> float:
    """A pytest timeout for n examples of about `per_example` seconds each (a hang bound)."""
    return n * per_example + slack
