"""Each answer checked against its question: is it about what was asked? (api-contract.md §5)

Owns: the rule that an answer names the resource that was asked for (an identity's handle; a
voiceprint's handle, identity and, where the call names it, model; an audio's handle, alias
and identity; a credits read's owner), because a caching middlebox may answer one
identity's compute with another's voiceprint, and believing it would report an enrollment
`enrolled` that never was. A mismatch is never a validation: for a read it is an
`InvalidResponse`; for a write an `OutcomeUnknown` (kind `mismatch`): the call may have taken
effect, and only a read settles it. Pure: the resource groups call it after parsing.
"""

from __future__ import annotations

from collections.abc import Mapping

from worker.api.errors import InvalidResponse, OutcomeUnknown


def mismatches(asked: Mapping[str, str | int | None], got: Mapping[str, object]) -> list[str]:
    """`field: asked X, answered Y` for each field asked (None: not asked) that the answer
    gives otherwise. A field the answer leaves out is not a mismatch: the real service may
    omit what the emulator sends (api-contract.md §5, unknown values)."""
    return [
        f"{name}: asked {want!r}, answered {got[name]!r}"
        for name, want in asked.items()
        if want is not None and got.get(name) is not None and got[name] != want
    ]


def check_about(
    asked: Mapping[str, str | int | None],
    got: Mapping[str, object],
    *,
    method: str,
    route: str,
) -> None:
    """Raise when the answer `got` is about another resource than `asked` (module docstring).

    Values are handles, aliases and counts the worker sent itself: never secrets.
    """
    wrong = mismatches(asked, got)
    if not wrong:
        return
    message = "answer about another resource (" + "; ".join(wrong)[:400] + ")"
    if method == "GET":
        raise InvalidResponse(message, method=method, route=route)
    raise OutcomeUnknown(message, kind="mismatch", method=method, route=route)
