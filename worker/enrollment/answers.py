"""What each refusal of the API means for the action that got it: the reconcile column of
design.md §4 and the failure handling of §5, as one pure function and a table.

Owns: the meaning of an error answer (or of a local file that changed since preflight) for one
action: an observation for the rules to fold (a failure as a `Done` in `Rejected`), or `Fatal`.
It performs no I/O and decides no next action: the driver (`driver.py`) folds what this says
into the view, and `rules.decide` decides, including when a step has failed transiently too
often. A 409 whose meaning needs reads first (create voiceprint, add audio, compute, upload) is
explained by `collisions.py` after the driver has read; the one 409 that needs no read, a
create identity's, is here. A 404 to an add is read too (is the audio gone?) and never comes
here: the driver reports it as `AddNotFound` and the rules decide what it means.

| answer | action | meaning |
|---|---|---|
| 429 without Retry-After | any | `CreditsExhausted`: nothing billed runs until credits return |
| 401 | any | `Fatal`: no call of the worker can succeed |
| 5xx, 429, not sent | any | `Transient`: tried again; the rules fail the step at its 4th |
| outcome unknown | create audio | `AudioOutcomeUnknown`: alias search before any new create |
| outcome unknown | other | `Transient` |
| 409 | create identity | `IdentityReady`: it exists, that is fine |
| 404 | get identity | failed: it does not exist and createIdentity is false |
| 422 | add audio | failed, with the model's reason |
| other status | any | failed, with the server's reason and status |
| file changed or gone | any | failed, naming the file |
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.api import errors
from worker.audio.files import AudioUnreadable
from worker.enrollment.actions import Action, AddAudio, CreateAudio, EnsureIdentity, UploadFile
from worker.enrollment.observe import (
    AudioOutcomeUnknown,
    CreditsExhausted,
    IdentityReady,
    Observation,
    Rejected,
    Transient,
)
from worker.enrollment.view import Done
from worker.journal.records import Outcome, Step


@dataclass(frozen=True)
class Fatal:
    """The worker cannot go on at all (the API refuses the credentials)."""

    reason: str


def _failed(step: Step, reason: str, status: int | None = None) -> list[Observation]:
    return [Rejected(Done(Outcome.FAILED, step, reason, status))]


def meaning(
    action: Action, exc: errors.ApiError | AudioUnreadable, *, identity: str, file_name: str
) -> list[Observation] | Fatal:
    """What `exc`, raised while performing `action`, tells the rules (see the module's table).

    `identity` is the enrollment's; `file_name` names the action's file as a person knows it.
    """
    step = action.step or Step.VOICEPRINT
    match exc:
        case AudioUnreadable():  # vanished, swapped or changed since preflight
            name = file_name if isinstance(action, UploadFile) else "file"
            return _failed(step, f"{name}: {exc}")
        case errors.CreditsExhausted():
            return [CreditsExhausted(step, f"credits exhausted: {exc.message}")]
        case errors.Unauthorized():
            return Fatal(str(exc))
        case errors.ServerError() | errors.RateLimited() | errors.NotSent():
            return [Transient(step, str(exc))]
        case errors.OutcomeUnknown() if isinstance(action, CreateAudio):
            return [AudioOutcomeUnknown(action.sha, str(exc))]
        case errors.OutcomeUnknown():
            return [Transient(step, str(exc))]
        case errors.Conflict() if isinstance(action, EnsureIdentity) and action.create:
            return [IdentityReady()]  # a duplicate handle: the only 409 of this create
        case errors.NotFound() if isinstance(action, EnsureIdentity) and not action.create:
            reason = f"identity {identity!r} does not exist and createIdentity is false"
            return _failed(Step.IDENTITY, reason, 404)
        case errors.Unprocessable() if isinstance(action, AddAudio):
            return _failed(Step.ADD_AUDIO, f"{file_name}: {exc.message}", 422)
        case errors.HttpStatusError():
            return _failed(step, exc.message, exc.status)
    return _failed(step, str(exc))
