"""The words of a manifest's `existing` and `retire` fields: what becomes of a customer whose
voiceprint is already computed and differs from the manifest.

Owns: the accepted values and why a given one is refused. Matched case-insensitively, so a
spreadsheet's `Skip` means `skip`. Pure. What each value does is `worker.enrollment.rules`'
(`existing`) and `worker.enrollment.swap`'s (`retire`); README "Customers already enrolled".
"""

from __future__ import annotations

from typing import Any, get_args

from worker.config.settings import Existing, Retire

POLICY_WORDS: dict[str, tuple[str, ...]] = {
    "existing": get_args(Existing),
    "retire": get_args(Retire),
}


def policy_problem(name: str, value: Any) -> str | None:
    """Why `value` is not a word of policy `name` ("existing", "retire"), or None."""
    words = POLICY_WORDS[name]
    if isinstance(value, str) and value.strip().lower() in words:
        return None
    return "must be one of " + ", ".join(words)
