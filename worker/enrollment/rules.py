"""The enrollment state machine, as pure transitions (design.md §4).

Owns: what to do next for one enrollment, given what is known about it, every decision of it:
`decide(view)` returns the next action, or `Done` once it has an outcome (also giving up on a
step that keeps failing, and what an add's 404 means); `observe.advance` folds the action's
results back into the view. Nothing here performs I/O or knows about HTTP: the async driver in
`driver.py` does the calls; what an error answer means is `answers.py`, what a 409 means (after
reads) `collisions.py`, both pure. That split keeps every branch of the upsert testable with
plain values. The values themselves are in `view.py`.

design.md §4, step by step, and where each row is decided here: identity → `EnsureIdentity`
(first when it may be created: a 201 proves nothing of ours exists yet); voiceprint → the
model / minAudios / computed checks of `decide` and `_decide_computed` (`unchanged`,
`conflict`); audios → `_decide_audios` (find, create, upload, wait); create voiceprint, add
audios, compute → `_decide_members` (an add's 404: `_after_add_not_found`); validate →
`_decide_computed`. Limits and failures (§5, §7): `_gave_up`, `_loop_failure`, `_await`.

Invariants the rules guarantee:
- a voiceprint computed earlier is never touched: same model and same audios → `unchanged`,
  anything else → `conflict`;
- nothing is uploaded before the voiceprint was read (an unchanged enrollment costs no upload);
- an audio whose create had an unknown outcome is looked up again (by its sha256 alias) before
  any new create;
- membership is by content: the voiceprint holding an audio with our sha256 *is* that file
  added, whatever its handle; it never gets a second copy;
- compute only right after a listing shows the voiceprint holds exactly the manifest's files
  (no more, no fewer, no repeats) and the server says `computable`;
- what the server is still processing (a file, a compute) is waited for by reading it, paced,
  within `Limits.processing_timeout`;
- an audio the server lost (an add's 404, and the audio is gone too) is looked for again, once
  per file; otherwise an add's 404 fails the enrollment with the server's reason;
- every enrollment ends: actions that make no progress are capped (`Limits.max_stalls`), and the
  failure names the loop; a step failing transiently `Limits.max_attempts` times fails it
  ("gave up after retries"), which bounds the requests of one step
  (`requests.py`, "the most one step may cost").
"""

from __future__ import annotations

from collections import Counter

from worker.audio.voice_rule import MIN_TOTAL_VOICE_S
from worker.enrollment.actions import (
    Action,
    AddAudio,
    AwaitAudio,
    AwaitCompute,
    Compute,
    CreateAudio,
    CreateVoiceprint,
    EnsureIdentity,
    FindAudio,
    GetVoiceprint,
    ListVoiceprintAudios,
    Replace,
    UploadFile,
    Validate,
)
from worker.enrollment.view import (
    ABSENT,
    CREDITS_REASON,
    UNKNOWN,
    AddNotFound,
    AudioSeen,
    Done,
    Plan,
    View,
    VoiceprintSeen,
)
from worker.journal.records import Outcome, Step


def decide(view: View) -> Action:
    """The next action for this enrollment; `Done` when it has reached an outcome."""
    if (gave_up := _gave_up(view)) is not None:
        return gave_up
    if view.verdict is not None:
        return view.verdict
    if view.credits_exhausted:
        # Whichever call the server refused for credits: asking again would be refused too.
        return Done(Outcome.SKIPPED, view.credits_step, view.credits_reason or CREDITS_REASON)
    if len(view.stalls) >= view.limits.max_stalls:
        return _loop_failure(view)
    if view.add_not_found is not None:
        return _after_add_not_found(view, view.add_not_found)
    plan = view.plan
    if plan.audios_only:  # the swap's delete path: the new audios, ready; no voiceprint
        return _decide_audios(view) or Done(Outcome.UNCHANGED)
    vp = view.voiceprint
    if vp == UNKNOWN:
        # Creating the identity first is cheaper for new customers: a 201 proves that neither a
        # voiceprint nor an audio of ours can exist under it, which saves two reads.
        if plan.create_identity and not view.identity_ready:
            return EnsureIdentity(create=True)
        return GetVoiceprint()

    if isinstance(vp, VoiceprintSeen):
        if vp.model != plan.model:
            if vp.state == "computed" and plan.existing != "conflict" and not view.computed_here:
                return _decide_existing(view, vp)
            return Done(
                Outcome.CONFLICT,
                Step.VOICEPRINT,
                f"voiceprint {plan.voiceprint!r} exists with model {vp.model}, "
                f"the manifest asks for {plan.model}; left untouched{_HINT}",
            )
        if vp.state == "computed":
            return _decide_computed(view, vp)
        if vp.min_audios is not None and vp.min_audios != plan.min_audios:
            return Done(
                Outcome.CONFLICT,
                Step.VOICEPRINT,
                f"voiceprint {plan.voiceprint!r} exists with minAudios {vp.min_audios}, "
                f"the manifest asks for {plan.min_audios}; left untouched",
            )
        if view.compute_accepted:
            return _await(view, "compute", Step.COMPUTE, "voiceprint compute") or AwaitCompute(
                _delay(view, "compute")
            )

    if not view.identity_ready and vp == ABSENT:
        return EnsureIdentity(create=plan.create_identity)

    if (action := _decide_audios(view)) is not None:
        return action

    if vp == ABSENT:
        return CreateVoiceprint()
    assert isinstance(vp, VoiceprintSeen)
    return _decide_members(view, vp)


def _decide_audios(view: View) -> Action | None:
    """Every file first gets its audio and is uploaded; then we wait for their processing."""
    plan = view.plan
    for sha in plan.shas:
        seen = view.audio(sha)
        if seen == UNKNOWN:
            return FindAudio(sha)
        if seen == ABSENT:
            return CreateAudio(sha)
        assert isinstance(seen, AudioSeen)
        if seen.identity is not None and seen.identity != plan.identity:
            return Done(
                Outcome.CONFLICT,
                Step.AUDIO,
                f"audio {seen.handle} (sha256 {sha[:12]}…) is linked to identity "
                f"{seen.identity!r}, not {plan.identity!r}; left untouched",
            )
        if seen.state == "avaitingFile" and not seen.received:
            return UploadFile(sha, seen.handle)
        if seen.state == "notAvailable":
            return Done(
                Outcome.FAILED,
                Step.UPLOAD,
                f"audio {seen.handle} (sha256 {sha[:12]}…) could not be decoded by the server",
            )
    for sha in plan.shas:  # uploaded, still being processed: one wait covers them all
        seen = view.audio(sha)
        assert isinstance(seen, AudioSeen)
        if seen.state == "avaitingFile":
            resource = f"audio:{sha}"
            what = f"audio {seen.handle} (sha256 {sha[:12]}…)"
            return _await(view, resource, Step.UPLOAD, what) or AwaitAudio(
                sha, seen.handle, _delay(view, resource)
            )
    return None


def _decide_members(view: View, vp: VoiceprintSeen) -> Action:
    """Add what is missing, refuse what is foreign, and compute only an exact listing."""
    plan = view.plan
    if view.held is None:
        return ListVoiceprintAudios()
    extra = _extra(view.held, plan.shas)
    if extra:
        return Done(
            Outcome.CONFLICT,
            Step.VOICEPRINT,
            f"voiceprint {plan.voiceprint!r} holds {plan.files(view.held)}, the manifest lists "
            f"{plan.files(plan.shas)}; not computed, left untouched",
        )
    for sha in plan.shas:
        if sha not in view.held:  # by content: an audio with our sha counts as added
            seen = view.audio(sha)
            assert isinstance(seen, AudioSeen)
            return AddAudio(sha, seen.handle)
    if not view.listed:
        return ListVoiceprintAudios()  # re-listed right before compute: exactly ours
    if vp.state == "notComputable":
        return Done(Outcome.FAILED, Step.COMPUTE, not_computable_reason(plan, vp))
    return Compute()


def _decide_computed(view: View, vp: VoiceprintSeen) -> Action:
    plan = view.plan
    if view.computed_here:
        if not view.validated:
            return Validate()
        if vp.audio_count != len(plan.shas):
            return Done(
                Outcome.FAILED,
                Step.VALIDATE,
                f"computed voiceprint holds {vp.audio_count} audios, expected {len(plan.shas)}",
            )
        return Done(Outcome.ENROLLED)
    if view.held is None:
        return ListVoiceprintAudios()
    if sorted(view.held) == sorted(plan.shas):
        return Done(Outcome.UNCHANGED)
    return _decide_existing(view, vp)


def _decide_existing(view: View, vp: VoiceprintSeen) -> Action:
    """A voiceprint computed earlier that differs from the manifest: the policy `existing`
    decides. conflict: reported, untouched; skip: kept as it is; overwrite: replaced (the swap).
    Its audios are listed first, so that the reason names what it was computed from."""
    plan = view.plan
    if view.held is None:
        return ListVoiceprintAudios()
    differs = _differs(plan, vp, view.held)
    name = f"voiceprint {plan.voiceprint!r}"
    if plan.existing == "skip":
        return Done(Outcome.KEPT, Step.VOICEPRINT, f"{name} {differs}; kept (existing: skip)")
    if plan.existing == "overwrite":
        return Replace(vp, view.held, differs)
    return Done(
        Outcome.CONFLICT,
        Step.VOICEPRINT,
        f"{name} {differs}; left untouched{_HINT}",
    )


_HINT = " (existing: overwrite replaces it, skip keeps it)"


def _differs(plan: Plan, vp: VoiceprintSeen, held: tuple[str, ...]) -> str:
    """How a computed voiceprint differs from the manifest, in files and models."""
    parts = []
    if vp.model != plan.model:
        parts.append(f"has model {vp.model}, the manifest asks for {plan.model}")
    if sorted(held) != sorted(plan.shas):
        parts.append(
            f"was computed earlier from {plan.files(held)}, the manifest lists "
            f"{plan.files(plan.shas)}"
        )
    return "; ".join(parts) or "differs"


def _gave_up(view: View) -> Done | None:
    """The failure of a step that failed transiently `Limits.max_attempts` times, else None.

    Each of those failures already spent the client's retries of one request; trying the step
    again would most likely only spend more (`requests.py`, "the most one step may cost").
    """
    for key, count in view.attempts.items():
        if count >= view.limits.max_attempts:
            step = Step(key.split(":", 1)[0])  # "audio:<sha>": a file's unknown create outcomes
            return Done(Outcome.FAILED, step, f"gave up after retries: {view.last_transient}")
    return None


def _after_add_not_found(view: View, refused: AddNotFound) -> Action:
    """An add answered 404. With the audio gone too, the server lost it (restored from a
    backup, deleted): the file's audio is looked for again (found, or made again), once per
    file, since the process and the journal may remember the handle for days. Otherwise (or
    lost twice) what is missing is the voiceprint or the identity: failed, as the server said.

    That find is part of the add step: a transient failure of it counts as the add's, and the
    add is tried again as it was (its 404 then fails the enrollment: the file was lost once).
    """
    if refused.audio_gone and refused.sha not in view.lost:
        return FindAudio(refused.sha, lost=refused.handle, step=Step.ADD_AUDIO)
    return Done(Outcome.FAILED, Step.ADD_AUDIO, refused.reason, refused.status)


def not_computable_reason(plan: Plan, vp: VoiceprintSeen) -> str:
    """Why a voiceprint with every audio added still is not computable, in the model's terms."""
    if vp.audio_count < plan.min_audios:
        return f"{vp.audio_count} audios added < minAudios {plan.min_audios}"
    if vp.total_voice_s is not None and vp.total_voice_s < MIN_TOTAL_VOICE_S:
        return f"total voice {vp.total_voice_s:.1f} s < {MIN_TOTAL_VOICE_S} s"
    return "the server still reports notComputable after every audio was added"


# --- helpers ---------------------------------------------------------------------------------


def _delay(view: View, resource: str) -> float:
    wait = view.waits.get(resource)
    return view.limits.wait_delay(wait.polls if wait else 0)


def _await(view: View, resource: str, step: Step, what: str) -> Done | None:
    """The failure once a resource has been processing longer than the timeout, else None."""
    wait = view.waits.get(resource)
    timeout = view.limits.processing_timeout
    if wait is None or wait.last - wait.started < timeout:
        return None
    return Done(
        Outcome.FAILED,
        step,
        f"{what} still processing after {wait.last - wait.started:.0f} s "
        f"({wait.polls} reads; ENROLLER_PROCESSING_TIMEOUT is {timeout:g} s)",
    )


def _extra(held: tuple[str, ...], wanted: tuple[str, ...]) -> list[str]:
    """What the voiceprint holds beyond the manifest's files: foreign audios and repeats."""
    extra = Counter(held)
    extra.subtract(Counter(wanted))
    return sorted(sha for sha, n in extra.items() if n > 0)


def _loop_failure(view: View) -> Done:
    counts = Counter(view.stalls)
    (step, _), _ = counts.most_common(1)[0]
    loop = ", ".join(f"{name} ×{n}" for (_, name), n in counts.most_common(3))
    return Done(
        Outcome.FAILED,
        step,
        f"gave up after {len(view.stalls)} actions that made no progress "
        f"(ENROLLER_MAX_ACTIONS); the loop: {loop}",
    )
