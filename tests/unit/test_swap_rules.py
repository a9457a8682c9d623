"""The swap's pure decisions (worker/enrollment/swap_rules.py): from what the server holds under
the three handles, the next step; the old voiceprint is never moved or deleted before the new
one is ready, and a swap found half done is finished, never started again."""

from __future__ import annotations

from dataclasses import replace

import pytest

from worker.enrollment.swap_rules import (
    Brief,
    BuildInPlace,
    BuildNext,
    DeleteOld,
    DeleteRetired,
    Finished,
    MoveNewIn,
    MoveOldAside,
    Read,
    Stuck,
    SwapView,
    UploadAudios,
    next_handle,
    retired_handle,
    swap_step,
)
from worker.enrollment.view import ABSENT
from worker.manifest.values import HANDLE_MAX, handle_problem

OLD = Brief("0f3c9a1e-7d2b-4c11-9e0a-55aa66bb77cc", "computed", "default/v1")
NEW = Brief("9999aaaa-0000-4000-8000-000000000000", "computed", "phone/v1")
RENAME = SwapView(via="rename", retire="delete", old_id=OLD.id or "")
DELETE = replace(RENAME, via="delete")


def test_handles_are_valid_and_fit_the_limit() -> None:
    assert next_handle("main") == "main-next"
    assert retired_handle("main", OLD.id or "") == "main-retired-0f3c9a1e"
    longest = "a" * HANDLE_MAX
    for handle in (next_handle(longest), retired_handle(longest, OLD.id or ""), next_handle("a-")):
        assert handle_problem(handle) is None and len(handle) <= HANDLE_MAX


CASES = [
    ("nothing read yet", RENAME, Read("current")),
    ("old in place, new not built: build beside", replace(RENAME, current=OLD), BuildNext()),
    (
        "old in place, new built: move the old aside",
        replace(RENAME, current=OLD, built=True),
        MoveOldAside(),
    ),
    ("window open, new unknown: read it", replace(RENAME, current=ABSENT), Read("next")),
    (
        "window open, new computed: move it in",
        replace(RENAME, current=ABSENT, next=NEW),
        MoveNewIn(),
    ),
    ("new in place: read the retired", replace(RENAME, current=NEW), Read("retired")),
    (
        "new in place, old aside: delete it",
        replace(RENAME, current=NEW, retired=OLD),
        DeleteRetired(),
    ),
    (
        "new in place, old gone: done",
        replace(RENAME, current=NEW, retired=ABSENT),
        Finished("deleted"),
    ),
    (
        "retire keep: the old one stays aside",
        replace(RENAME, retire="keep", current=NEW),
        Finished("kept"),
    ),
    (
        "delete refused: the old one stays, said so",
        replace(RENAME, current=NEW, retired=OLD, delete_refused="405"),
        Finished("kept"),
    ),
    ("delete path: audios first", replace(DELETE, current=OLD), UploadAudios()),
    (
        "delete path: audios ready, the old one goes",
        replace(DELETE, current=OLD, audios_ready=True),
        DeleteOld(),
    ),
    ("delete path: window open, build in place", replace(DELETE, current=ABSENT), BuildInPlace()),
    (
        "delete path, resumed: a voiceprint of ours in place is finished by the upsert",
        replace(DELETE, current=NEW),
        BuildInPlace(),
    ),
    ("delete path: built", replace(DELETE, current=NEW, built=True), Finished("deleted")),
]


@pytest.mark.parametrize(("name", "view", "expected"), CASES, ids=[c[0] for c in CASES])
def test_swap_step(name: str, view: SwapView, expected: object) -> None:
    assert swap_step(view) == expected


def test_a_window_with_nothing_to_move_in_stops_without_changing_anything() -> None:
    step = swap_step(replace(RENAME, current=ABSENT, next=ABSENT))
    assert isinstance(step, Stuck) and "retired handle" in step.reason


def test_the_old_one_is_never_touched_before_the_new_one_is_ready() -> None:
    for view in (replace(RENAME, current=OLD), replace(DELETE, current=OLD)):
        assert swap_step(view) not in (MoveOldAside(), DeleteOld())
