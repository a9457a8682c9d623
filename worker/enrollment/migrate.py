"""Moving one identity's voiceprint to a new model, from the audio already on the server.

Owns: what a migration does with what it finds under the manifest's handle
(`migration_verdict`, pure: nothing to move, already moved, another model, an audio the new
model refuses) and the few reads that find it out (`migrate`). The move itself is a swap
(`swap.py`): a new voiceprint on the new model is made from the old one's audios (listed from
the server, never uploaded: no local file is needed), computed once, validated and switched in,
the old one retired as `retire` says. README "Moving a space to a new model".
"""

from __future__ import annotations

from collections.abc import Sequence

from worker.api.schemas import Audio
from worker.audio.inspect import MODELS
from worker.enrollment.actions import Replace
from worker.enrollment.reads import Reads, listing_key, seen
from worker.enrollment.swap import Swap
from worker.enrollment.task import EnrollmentTask
from worker.enrollment.view import ABSENT, Absent, Done, VoiceprintSeen
from worker.journal.records import EnrollmentOutcome, ErrorInfo, Outcome, Step


def migration_verdict(
    vp: VoiceprintSeen | Absent,
    audios: Sequence[Audio],
    *,
    handle: str,
    from_model: str,
    to_model: str,
) -> Done | None:
    """The outcome when there is nothing to move (or it cannot be moved); None: move it.

    `audios`: what the voiceprint holds (listed only when it is computed on `from_model`).
    """
    name = f"voiceprint {handle!r}"
    if vp == ABSENT:
        return Done(Outcome.KEPT, Step.VOICEPRINT, f"no {name}: nothing to migrate")
    assert isinstance(vp, VoiceprintSeen)
    if vp.model == to_model and vp.state == "computed":
        return Done(Outcome.UNCHANGED)  # moved already (an earlier run, or never on the old)
    if vp.model != from_model:
        why = f"{name} has model {vp.model}, not {from_model}: not migrated"
        return Done(Outcome.KEPT, Step.VOICEPRINT, why)
    if vp.state != "computed":
        why = f"{name} on {from_model} was never computed: nothing to migrate"
        return Done(Outcome.KEPT, Step.VOICEPRINT, why)
    if not audios:
        why = f"{name} lists no audios: nothing to make the {to_model} voiceprint from"
        return Done(Outcome.FAILED, Step.SWAP, why)
    req = MODELS.get(to_model)
    for audio in audios:
        rate = audio.sample_rate
        if req is not None and rate is not None and rate < req.min_samplerate:
            return Done(
                Outcome.FAILED,
                Step.SWAP,
                f"audio {audio.handle} is {rate} Hz; {to_model} needs at least "
                f"{req.min_samplerate} Hz; the {from_model} voiceprint stays",
            )
    return None


async def migrate(task: EnrollmentTask, reads: Reads, swap: Swap) -> EnrollmentOutcome:
    """Migrate `task`'s voiceprint from `task.migrate_from` to `task.model` (2 reads, then the
    swap), or say why not; the old voiceprint is never changed when it is not moved."""
    assert task.migrate_from is not None
    vp = await reads.voiceprint()
    computed_on_old = isinstance(vp, VoiceprintSeen) and vp.model == task.migrate_from
    listed = await reads.held_audios() if computed_on_old and vp.state == "computed" else []
    verdict = migration_verdict(
        vp, listed, handle=task.voiceprint, from_model=task.migrate_from, to_model=task.model
    )
    last = reads.last_voiceprint
    if verdict is not None:
        error = (
            ErrorInfo(step=verdict.step.value, reason=verdict.reason)
            if verdict.step is not None
            else None
        )
        return task.outcome(
            verdict.outcome,
            error=error,
            voiceprint_id=last.id if last else None,
            state=last.state.value if last else None,
        )
    assert isinstance(vp, VoiceprintSeen) and last is not None
    replace = Replace(
        old=seen(last),
        held=tuple(listing_key(a) for a in listed),
        differs=f"model {task.migrate_from} → {task.model}",
        handles=tuple(a.handle for a in listed),
    )
    return await swap.start(replace)
