"""Replacing a computed voiceprint, as pure decisions (README "Customers already enrolled").

Owns: the handles a swap uses (`next_handle`, `retired_handle`), what the swap knows
(`SwapView`) and its next step (`swap_step`). The driver (`swap.py`) reads the server, performs
the step and asks again, so that a swap interrupted anywhere (`kill -9` included) is finished
by reading where it stands: every step is decided from the server's answers and the journaled
`SwapStarted`, never from memory of this process.

The guarantees, and where they are decided:
- the customer keeps a computed voiceprint under the manifest's handle except for the shortest
  window the API allows: with rename, between moving the old one aside and moving the new one
  in (two requests); without rename, from deleting the old one to computing the new one;
- the old voiceprint is never moved or deleted before the new one is computed (rename) or
  before the new audios are all `available` (delete);
- one billed compute: the new voiceprint is built by the ordinary upsert, whose compute is
  journaled (`ComputeIntent`) and reconciled by reading;
- nothing the manifest does not name is deleted: only the old voiceprint under the manifest's
  handle (with `retire: delete`), found by the id journaled before the first change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from worker.enrollment.view import ABSENT, UNKNOWN, Absent, Unknown
from worker.manifest.values import HANDLE_MAX

NEXT_SUFFIX = "-next"
RETIRED_INFIX = "-retired-"


def _fit(handle: str, suffix: str) -> str:
    """`handle` + `suffix`, the handle shortened so the whole stays a valid handle."""
    head = handle[: HANDLE_MAX - len(suffix)].rstrip("-")
    return head + suffix


def next_handle(handle: str) -> str:
    """Where the new voiceprint is built beside the old one: `<handle>-next`."""
    return _fit(handle, NEXT_SUFFIX)


def retired_handle(handle: str, old_id: str) -> str:
    """Where the old voiceprint is moved: `<handle>-retired-<first 8 letters or digits of its
    id>`, one handle per replaced voiceprint, so that a second replacement never collides."""
    tag = re.sub(r"[^a-z0-9]", "", old_id.lower())[:8] or "old"
    return _fit(handle, RETIRED_INFIX + tag)


@dataclass(frozen=True)
class Brief:
    """A voiceprint under one handle, as read: enough to tell the old one from the new."""

    id: str | None
    state: str
    model: str


Seen = Brief | Absent | Unknown


@dataclass(frozen=True)
class SwapView:
    """What is known of one swap. `current`, `next`, `retired`: the voiceprints under the
    manifest's handle, the new one's handle and the retired handle (UNKNOWN until read).
    `built`: this run built the new voiceprint to a computed state (or proved it was);
    `audios_ready`: the new audios are all available (delete path)."""

    via: Literal["rename", "delete"]
    retire: Literal["delete", "keep"]
    old_id: str
    current: Seen = UNKNOWN
    next: Seen = UNKNOWN
    retired: Seen = UNKNOWN
    built: bool = False
    audios_ready: bool = False
    delete_refused: str = ""  # why deleting the retired voiceprint was refused, if it was


@dataclass(frozen=True)
class Read:
    """Read the voiceprint under `which` handle: "current", "next" or "retired"."""

    which: Literal["current", "next", "retired"]


@dataclass(frozen=True)
class BuildNext:
    """Build the new voiceprint under the next handle: the ordinary upsert, compute included."""


@dataclass(frozen=True)
class MoveOldAside:
    """Rename the old voiceprint to the retired handle: the window opens."""


@dataclass(frozen=True)
class MoveNewIn:
    """Rename the new voiceprint to the manifest's handle: the window closes."""


@dataclass(frozen=True)
class DeleteRetired:
    """`retire: delete`: delete the old voiceprint, now under the retired handle."""


@dataclass(frozen=True)
class UploadAudios:
    """Delete path: every new audio uploaded and available before the old one goes."""


@dataclass(frozen=True)
class DeleteOld:
    """Delete path: delete the old voiceprint under the manifest's handle: the window opens."""


@dataclass(frozen=True)
class BuildInPlace:
    """Delete path: build the new voiceprint under the manifest's handle: the window closes."""


@dataclass(frozen=True)
class Finished:
    """The new voiceprint is in place; `retired` says what became of the old one."""

    retired: str


@dataclass(frozen=True)
class Stuck:
    """The server holds something no step explains; nothing more is changed."""

    reason: str


SwapStep = (
    Read
    | BuildNext
    | MoveOldAside
    | MoveNewIn
    | DeleteRetired
    | UploadAudios
    | DeleteOld
    | BuildInPlace
    | Finished
    | Stuck
)


def _is_old(seen: Seen, old_id: str) -> bool:
    return isinstance(seen, Brief) and seen.id == old_id


def swap_step(view: SwapView) -> SwapStep:
    """The next step of a swap, from what the server was seen to hold."""
    if view.current == UNKNOWN:
        return Read("current")
    if view.via == "delete":
        return _delete_step(view)
    return _rename_step(view)


def _rename_step(view: SwapView) -> SwapStep:
    if _is_old(view.current, view.old_id):
        return MoveOldAside() if view.built else BuildNext()
    if view.current == ABSENT:  # the window is open: the old one is aside
        if view.next == UNKNOWN:
            return Read("next")
        if isinstance(view.next, Brief) and view.next.state == "computed":
            return MoveNewIn()
        return Stuck(
            "no voiceprint under the manifest's handle and no computed new one to move in; "
            "the old one should be under its retired handle"
        )
    # The new one is in place (whatever the id: a fresh read after our rename).
    if view.retire == "keep":
        return Finished("kept")
    if view.retired == UNKNOWN:
        return Read("retired")
    if _is_old(view.retired, view.old_id) and not view.delete_refused:
        return DeleteRetired()
    return Finished("kept" if _is_old(view.retired, view.old_id) else "deleted")


def _delete_step(view: SwapView) -> SwapStep:
    if _is_old(view.current, view.old_id):
        return DeleteOld() if view.audios_ready else UploadAudios()
    if not view.built:
        return BuildInPlace()
    return Finished("deleted")
