"""Replacing a computed voiceprint against the API: the driver of `swap_rules.swap_step`.

Owns: learning what the API lets us do to a voiceprint (`VoiceprintEdits`: rename and delete,
learned once per job's client, before anything is changed), journaling `SwapStarted` before
the first change, performing each step and turning the end into the enrollment's outcome
(`replaced`, with the old voiceprint and files and the new ones). The new voiceprint itself is
built by the ordinary upsert, which the caller hands in (`build`), so that its audios, its one
compute and its validation are the enrollment engine's, journal and all.

Crash points (`worker.base.crashpoints`): `swap.started` (journaled, nothing changed),
`swap.built` (the new one computed), `swap.moved_aside` (the window opened by renaming the old
one), `swap.moved_in` (the window closed), `swap.retired_deleted`, `swap.old_deleted` (delete
path: the window opened by deleting the old one).
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import replace as changed

import anyio
import structlog

from worker.api import errors
from worker.api.client import ApiClient
from worker.base.crashpoints import crash_point
from worker.base.errors import EnrollmentFailed
from worker.enrollment.actions import Replace
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
    Seen,
    Stuck,
    SwapView,
    UploadAudios,
    next_handle,
    retired_handle,
    swap_step,
)
from worker.enrollment.task import EnrollmentTask
from worker.enrollment.view import ABSENT, UNKNOWN
from worker.journal.records import (
    EnrollmentOutcome,
    ErrorInfo,
    Outcome,
    Replaced,
    Step,
    SwapStarted,
)
from worker.journal.writer import Journal

log = structlog.get_logger(__name__)

MAX_SWAP_STEPS = 24  # a swap takes at most ~10; beyond, the server keeps undoing it
Build = Callable[[EnrollmentTask], Awaitable[EnrollmentOutcome]]
NOT_OFFERED = (errors.MethodNotAllowed, errors.NotFound)
# What no swap step can answer by reading again: the key refused (the worker stops), a wait the
# API asked for that this run does not wait (the job checkpoints). The driver translates them.
PASS_THROUGH = (errors.Unauthorized, errors.ApiPaused)


class SwapRefused(EnrollmentFailed):
    """The swap cannot go on; `reason` says why and what was left as it is. Caught by `Swap`,
    which turns it into the enrollment's failed outcome."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class VoiceprintEdits:
    """Whether the API renames (PATCH) and deletes (DELETE) voiceprints: routes the published
    reference does not document (api-contract.md: inferred), so they are learned by asking,
    once per job, before a swap changes anything. A rename to the voiceprint's own handle is
    the question (a no-op where renaming exists); a delete of the next handle, which only a
    swap of ours ever creates, the other (404: the route exists, there was nothing)."""

    def __init__(self) -> None:
        self.rename: bool | None = None
        self.delete: bool | None = None
        self._lock = anyio.Lock()

    async def can_rename(self, client: ApiClient, task: EnrollmentTask) -> bool:
        async with self._lock:
            if self.rename is None:
                t = task
                try:
                    await client.rename_voiceprint(
                        t.owner, t.space, t.identity, t.voiceprint, handle=t.voiceprint
                    )
                    self.rename = True
                except NOT_OFFERED:
                    self.rename = False
            return self.rename

    async def can_delete(self, client: ApiClient, task: EnrollmentTask) -> bool:
        async with self._lock:
            if self.delete is None:
                t = task
                try:
                    await client.delete_voiceprint(
                        t.owner, t.space, t.identity, next_handle(t.voiceprint)
                    )
                    self.delete = True
                except errors.NotFound:
                    self.delete = True
                except errors.MethodNotAllowed:
                    self.delete = False
            return self.delete


_EDITS: weakref.WeakKeyDictionary[ApiClient, VoiceprintEdits] = weakref.WeakKeyDictionary()


def edits_of(client: ApiClient) -> VoiceprintEdits:
    """What this client (a job's view of it) learned of the API's voiceprint edits."""
    return _EDITS.setdefault(client, VoiceprintEdits())


class Swap:
    """One replacement of the voiceprint of `task` (its handle: the manifest's)."""

    def __init__(
        self,
        task: EnrollmentTask,
        client: ApiClient,
        journal: Journal,
        build: Build,
        edits: VoiceprintEdits,
    ) -> None:
        self.task = task
        self.client = client
        self.journal = journal
        self.build = build
        self.edits = edits
        self.new: EnrollmentOutcome | None = None  # the build's outcome, this run
        self.window_opened: float | None = None

    async def start(self, replace: Replace) -> EnrollmentOutcome:
        """Learn how the API lets us swap, journal it, then swap. Nothing is changed before
        `SwapStarted` is on disk; where nothing can be swapped, nothing is changed at all."""
        t = self.task
        old_id = replace.old.id
        if not old_id:  # every step tells the old voiceprint from the new one by its id
            why = "the API gave the voiceprint no id, so the old one could not be told apart"
            return self._failed(f"{why}; the old voiceprint is untouched")
        try:
            via = await self._via()
        except PASS_THROUGH:
            raise
        except (SwapRefused, errors.ApiError) as exc:
            reason = exc.reason if isinstance(exc, SwapRefused) else str(exc)
            return self._failed(f"{reason}; the old voiceprint is untouched")
        started = SwapStarted(
            key=t.key,
            via=via,
            retire=t.retire,
            old_id=old_id,
            old_model=replace.old.model,
            old_files=list(replace.held),
            old_audio_handles=list(replace.handles),
            old_min_audios=replace.old.min_audios,
            next_handle=next_handle(t.voiceprint),
            retired_handle=retired_handle(t.voiceprint, old_id),
        )
        await self.journal.append(started)
        crash_point("swap.started")
        log.info("swap_started", via=via, retire=t.retire, differs=replace.differs)
        old = Brief(replace.old.id, replace.old.state, replace.old.model)
        return await self.resume(started, current=old)

    async def _via(self) -> str:
        t = self.task
        if await self.edits.can_rename(self.client, t):
            return "rename"
        if t.retire == "keep":
            raise SwapRefused(
                "retire: keep needs the API to rename a voiceprint, and it does not "
                "(PATCH answered 405 or 404)"
            )
        if await self.edits.can_delete(self.client, t):
            return "delete"
        raise SwapRefused(
            "existing: overwrite needs the API to rename or to delete a voiceprint, and it "
            "offers neither (PATCH and DELETE answered 405 or 404)"
        )

    async def resume(self, started: SwapStarted, current: Seen = UNKNOWN) -> EnrollmentOutcome:
        """Finish the swap `started` describes, from wherever the server stands (`current`:
        the voiceprint under the manifest's handle, when it was just read)."""
        view = SwapView(
            via=started.via, retire=started.retire, old_id=started.old_id, current=current
        )
        for _ in range(MAX_SWAP_STEPS):
            step = swap_step(view)
            try:
                match step:
                    case Finished(retired=retired):
                        return self._replaced(started, view, retired)
                    case Stuck(reason=reason):
                        return self._failed(reason)
                    case _:
                        view = await self._perform(step, view, started)
            except SwapRefused as exc:
                return self._failed(exc.reason)
            except PASS_THROUGH:
                raise
            except errors.ApiError as exc:
                # Whatever it did or did not do, the next step is decided by reading again.
                log.info("swap_step_transient", step=type(step).__name__, reason=str(exc))
                view = SwapView(via=view.via, retire=view.retire, old_id=view.old_id)
        return self._failed(f"gave up after {MAX_SWAP_STEPS} steps: the server undid them")

    async def _perform(self, step: object, view: SwapView, started: SwapStarted) -> SwapView:
        t = self.task
        match step:
            case Read(which=which):
                handle = self._handle(which, started)
                return changed(view, **{which: await self._read(handle)})
            case BuildNext():
                await self._build(_from_old_audios(t.under(started.next_handle), started))
                crash_point("swap.built")
                return changed(view, built=True)
            case MoveOldAside():
                self.window_opened = time.monotonic()
                await self._rename(t.voiceprint, started.retired_handle)
                crash_point("swap.moved_aside")
                aside = view.current if isinstance(view.current, Brief) else UNKNOWN
                new = Brief(None, "computed", t.model)
                return changed(view, current=ABSENT, next=new, retired=aside)
            case MoveNewIn():
                moved = await self._rename(started.next_handle, t.voiceprint)
                self._closed()
                crash_point("swap.moved_in")
                return changed(view, current=moved, next=ABSENT)
            case DeleteRetired():
                try:
                    await self._delete(started.retired_handle)
                except errors.MethodNotAllowed:
                    return changed(view, delete_refused="the API does not delete voiceprints")
                crash_point("swap.retired_deleted")
                return changed(view, retired=ABSENT)
            case UploadAudios():
                await self._build(
                    _from_old_audios(t.under(t.voiceprint, audios_only=True), started)
                )
                return changed(view, audios_ready=True)
            case DeleteOld():
                self.window_opened = time.monotonic()
                try:
                    await self._delete(t.voiceprint)
                except errors.MethodNotAllowed:
                    raise SwapRefused("the API does not delete voiceprints (405)") from None
                crash_point("swap.old_deleted")
                return changed(view, current=ABSENT)
            case BuildInPlace():
                await self._build(_from_old_audios(t.under(t.voiceprint), started))
                self._closed()
                return changed(view, built=True)
        raise AssertionError(f"no swap step {step!r}")  # pragma: no cover

    # --- calls -----------------------------------------------------------------------------

    def _handle(self, which: str, started: SwapStarted) -> str:
        return {
            "current": self.task.voiceprint,
            "next": started.next_handle,
            "retired": started.retired_handle,
        }[which]

    async def _read(self, handle: str) -> Seen:
        t = self.task
        try:
            vp = await self.client.get_voiceprint(t.owner, t.space, t.identity, handle)
        except errors.NotFound:
            return ABSENT
        return Brief(vp.id, vp.state.value, vp.model)

    async def _rename(self, handle: str, to: str) -> Brief:
        t = self.task
        try:
            vp = await self.client.rename_voiceprint(
                t.owner, t.space, t.identity, handle, handle=to
            )
        except errors.Conflict:
            raise SwapRefused(
                f"the handle {to!r} is taken by another voiceprint of {t.identity!r}; "
                "the swap stopped there"
            ) from None
        return Brief(vp.id, vp.state.value, vp.model)

    async def _delete(self, handle: str) -> None:
        t = self.task
        with contextlib.suppress(errors.NotFound):  # gone: a delete of ours, answer lost
            await self.client.delete_voiceprint(t.owner, t.space, t.identity, handle)

    async def _build(self, task: EnrollmentTask) -> None:
        outcome = await self.build(task)
        if outcome.outcome not in (Outcome.ENROLLED.value, Outcome.UNCHANGED.value):
            why = outcome.error.reason if outcome.error else outcome.outcome
            raise SwapRefused(
                f"the new voiceprint {task.voiceprint!r} was not built ({outcome.outcome}: "
                f"{why}); the old one is untouched"
            )
        if not task.plan.audios_only:
            self.new = outcome

    def _closed(self) -> None:
        if self.window_opened is not None:
            window = time.monotonic() - self.window_opened
            log.info("swap_window_closed", seconds=round(window, 4))

    # --- outcomes --------------------------------------------------------------------------

    def _replaced(self, started: SwapStarted, view: SwapView, retired: str) -> EnrollmentOutcome:
        t = self.task
        plan = t.plan
        kept = f"kept as {started.retired_handle!r}"
        if retired == "kept" and view.delete_refused:
            kept += f" ({view.delete_refused})"
        info = Replaced(
            old_voiceprint_id=started.old_id,
            old_model=started.old_model,
            old_files=plan.file_list(tuple(started.old_files)),
            new_model=t.model,
            new_files=plan.file_list(plan.shas),
            retired="deleted" if retired == "deleted" else kept,
        )
        log.info("swap_finished", retired=info.retired)
        base = self.new.model_dump() if self.new is not None else {}
        fields = {k: base[k] for k in _NEW_FIELDS if k in base}
        if not fields and isinstance(view.current, Brief):
            fields = {"voiceprint_id": view.current.id, "state": view.current.state}
        return t.outcome(Outcome.REPLACED, replaced=info, **fields)

    def _failed(self, reason: str) -> EnrollmentOutcome:
        log.warning("swap_failed", reason=reason)
        error = ErrorInfo(step=Step.SWAP.value, reason=f"replacing the voiceprint: {reason}")
        return self.task.outcome(Outcome.FAILED, error=error)


def _from_old_audios(task: EnrollmentTask, started: SwapStarted) -> EnrollmentTask:
    """A migration's new voiceprint is made of the old one's audios (no file): as journaled."""
    if task.migrate_from is None:
        return task
    audios = tuple(zip(started.old_files, started.old_audio_handles, strict=True))
    return changed(task, server_audios=audios, min_audios=started.old_min_audios or 1)


_NEW_FIELDS = (
    "voiceprint_id",
    "state",
    "audios",
    "total_duration_s",
    "total_voice_s",
    "attempts",
    "validated_by",
)
