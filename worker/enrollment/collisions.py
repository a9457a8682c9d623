"""What a 409 was: the reads that follow it, interpreted (api-contract.md §5).

Owns: turning "409, and then these reads" into observations and a short name of the
collision for the log. A 409 is several collisions (already added, already computed, not yet
available, other identity, a compute in progress, a file already received) and the message
wording is the server's, so nothing here reads the message: the state the reads show is the
answer. Pure; the driver (`driver.py`) does the reads. A collision that the reads do not
explain changes nothing, and the rules' stall cap bounds repeating it.
"""

from __future__ import annotations

from dataclasses import replace

from worker.enrollment.observe import (
    ComputeAccepted,
    Observation,
    SawAudio,
    SawVoiceprint,
    SawVoiceprintAudios,
    Transient,
    Validated,
)
from worker.enrollment.view import ABSENT, Absent, AudioSeen, Plan, VoiceprintSeen
from worker.journal.records import Step

Explained = tuple[str, list[Observation]]


def after_upload(sha: str, audio: AudioSeen | Absent) -> Explained:
    """A file upload answered 409; `audio` is the audio read right after."""
    if audio == ABSENT:
        return "the audio is gone", [SawAudio(sha, ABSENT)]
    if audio.state == "avaitingFile":
        # An audio takes one file: a refused upload to a file-less-looking audio means the
        # server has a file and is still processing it.
        return "file received, still processing", [SawAudio(sha, replace(audio, received=True))]
    return f"the audio already has its file ({audio.state})", [SawAudio(sha, audio)]


def add_needs_audio_read(
    sha: str, held: tuple[str, ...], voiceprint: VoiceprintSeen | Absent
) -> bool:
    """After an add's 409 and the reads of the voiceprint and its audios: whether only a read
    of the audio itself can explain it (not added, and the voiceprint still takes audios)."""
    unexplained = isinstance(voiceprint, VoiceprintSeen) and voiceprint.state != "computed"
    return sha not in held and unexplained


def after_add(
    sha: str,
    identity: str,
    held: tuple[str, ...],
    voiceprint: VoiceprintSeen | Absent,
    audio: AudioSeen | Absent | None,
) -> Explained:
    """Adding an audio to `identity`'s voiceprint answered 409; then the voiceprint's audios
    (`held`), the voiceprint and the audio were read. `audio` is None when the first reads
    already explain the collision (it was not read)."""
    seen: list[Observation] = [SawVoiceprintAudios(held), SawVoiceprint(voiceprint)]
    if sha in held:
        return "already added (the voiceprint holds an audio with this sha256)", seen
    if voiceprint == ABSENT:
        return "the voiceprint is gone", seen
    if voiceprint.state == "computed":
        return "the voiceprint is computed", seen
    if audio is None or audio == ABSENT:
        return "the audio is gone", [*seen, SawAudio(sha, ABSENT)]
    seen.append(SawAudio(sha, audio))
    if audio.state == "avaitingFile":
        return "the audio is not available yet", seen
    if audio.identity is not None and audio.identity != identity:
        return f"the audio belongs to identity {audio.identity}", seen
    return "unexplained by the reads", seen


def after_compute(voiceprint: VoiceprintSeen | Absent, *, ours: bool) -> Explained:
    """Compute answered 409; `voiceprint` is read right after. `ours`: an earlier attempt of
    this compute may have taken effect (a lost answer in this run, or a previous run's)."""
    if voiceprint == ABSENT:
        return "the voiceprint is gone", [SawVoiceprint(ABSENT)]
    if voiceprint.state == "computed":
        if ours:
            return "already computed by our earlier attempt", [
                ComputeAccepted(ours=True),
                Validated(voiceprint),
            ]
        return "already computed by someone else", [SawVoiceprint(voiceprint)]
    if voiceprint.state == "computable":
        # Computable and still refused: a compute is in progress (ours, or someone else's).
        return "a compute is in progress", [ComputeAccepted(ours=ours), SawVoiceprint(voiceprint)]
    return "not computable", [SawVoiceprint(voiceprint)]


def compute_expects(plan: Plan) -> dict[str, str | int]:
    """What a compute's answer must show to be about this enrollment's voiceprint: the
    manifest's model and audio count (the client refuses another as an unknown outcome)."""
    return {"model": plan.model, "audios": len(plan.shas)}


def after_unknown_compute(voiceprint: VoiceprintSeen | Absent, reason: str) -> Explained:
    """A compute of ours got no usable answer (lost, timed out, too large, redirected,
    unreadable, about another voiceprint); `voiceprint` is read right after, before anything
    else is sent for it (api-contract.md §5: a billed call is settled by reading, never by
    sending it again blind). Computed: ours took effect (we hold the identity's lock), and
    the read validates it. A state the contract does not name is "not settled yet": waited
    for as a compute in progress. Otherwise it did not happen (yet): a transient failure of the
    compute step, so the rules may compute again (a compute still in progress answers 409,
    explained by `after_compute`), at most as often as any step is tried."""
    if voiceprint == ABSENT:
        return "the voiceprint is gone", [SawVoiceprint(ABSENT)]
    if voiceprint.state == "computed":
        return "the compute took effect (read after its answer was lost)", [
            ComputeAccepted(ours=True),
            Validated(voiceprint, by="read after unknown outcome"),
        ]
    if voiceprint.state not in ("computable", "notComputable"):  # a state the contract lacks
        return f"not settled yet ({voiceprint.state})", [
            ComputeAccepted(ours=True),
            SawVoiceprint(voiceprint),
        ]
    return f"the compute did not take effect ({voiceprint.state})", [
        SawVoiceprint(voiceprint),
        Transient(Step.COMPUTE, reason),
    ]


def compute_may_be_ours(*, after_unknown_outcome: bool, sent_before: bool) -> bool:
    """Whether a compute's 409 may be our own compute having taken effect: the client resent
    one whose answer was lost, or this enrollment sent one before (this run or a previous)."""
    return after_unknown_outcome or sent_before


def ours_took_effect(observations: list[Observation]) -> bool:
    """Whether the explained observations say a compute of ours was accepted (it is billed)."""
    return any(isinstance(o, ComputeAccepted) and o.ours for o in observations)


def after_create_voiceprint(voiceprint: VoiceprintSeen | Absent) -> Explained:
    """Creating the voiceprint answered 409; `voiceprint` is read right after."""
    if voiceprint == ABSENT:
        return "unexplained by the reads (no such voiceprint)", [SawVoiceprint(ABSENT)]
    return "the voiceprint exists", [SawVoiceprint(voiceprint)]
