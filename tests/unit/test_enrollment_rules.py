"""The enrollment upsert as tables: (what is known) → (next action), and the loops it bounds."""

from __future__ import annotations

from dataclasses import replace

import pytest

from worker.enrollment.actions import (
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
    action_key,
)
from worker.enrollment.observe import (
    Added,
    AudioOutcomeUnknown,
    ComputeAccepted,
    Computed,
    CreditsExhausted,
    IdentityReady,
    Polled,
    SawAudio,
    SawVoiceprint,
    SawVoiceprintAudios,
    Validated,
    advance,
    observe,
)
from worker.enrollment.rules import decide
from worker.enrollment.view import ABSENT, AudioSeen, Done, Limits, Plan, View, VoiceprintSeen
from worker.journal.records import Outcome, Step

PLAN = Plan("cust-1", "main", "phone/v1", 1, True, ("aa", "bb"))
AVAILABLE = {"aa": AudioSeen("h-aa", "available"), "bb": AudioSeen("h-bb", "available")}
BOTH = ("aa", "bb")


def vp(state: str = "notComputable", model: str = "phone/v1", count: int = 0, voice=None):
    return VoiceprintSeen(state=state, model=model, audio_count=count, total_voice_s=voice)  # type: ignore[arg-type]


def view(**kw) -> View:
    return View(plan=kw.pop("plan", PLAN), **kw)


def ready(**kw) -> View:
    """Both audios available and the voiceprint known: the membership stage."""
    return view(**{"voiceprint": vp(count=0), "audios": AVAILABLE, **kw})


CASES = [
    ("nothing known: create the identity first", view(), EnsureIdentity(create=True)),
    ("identity exists (409): read the voiceprint", view(identity_ready=True), GetVoiceprint()),
    (
        "createIdentity false: read the voiceprint first",
        view(plan=replace(PLAN, create_identity=False)),
        GetVoiceprint(),
    ),
    (
        "absent voiceprint: make sure the identity exists",
        view(voiceprint=ABSENT),
        EnsureIdentity(create=True),
    ),
    (
        "createIdentity false is passed on",
        view(plan=replace(PLAN, create_identity=False), voiceprint=ABSENT),
        EnsureIdentity(create=False),
    ),
    (
        "identity ready: look each file up before creating",
        view(voiceprint=ABSENT, identity_ready=True),
        FindAudio("aa"),
    ),
    (
        "not found: create the audio",
        view(voiceprint=ABSENT, identity_ready=True, audios={"aa": ABSENT}),
        CreateAudio("aa"),
    ),
    (
        "created, awaiting its file: upload",
        view(
            voiceprint=ABSENT, identity_ready=True, audios={"aa": AudioSeen("h-aa", "avaitingFile")}
        ),
        UploadFile("aa", "h-aa"),
    ),
    (
        "first file received but processing: upload the second before waiting",
        view(
            voiceprint=ABSENT,
            identity_ready=True,
            audios={"aa": AudioSeen("h-aa", "avaitingFile", received=True), "bb": ABSENT},
        ),
        CreateAudio("bb"),
    ),
    (
        "every file received, one still processing: wait for it (0.2 s first)",
        view(
            voiceprint=ABSENT,
            identity_ready=True,
            audios={**AVAILABLE, "bb": AudioSeen("h-bb", "avaitingFile", received=True)},
        ),
        AwaitAudio("bb", "h-bb", 0.2),
    ),
    (
        "server could not decode: fail at upload",
        view(
            voiceprint=ABSENT, identity_ready=True, audios={"aa": AudioSeen("h-aa", "notAvailable")}
        ),
        Done(
            Outcome.FAILED,
            Step.UPLOAD,
            "audio h-aa (sha256 aa…) could not be decoded by the server",
        ),
    ),
    (
        "an audio of another identity: conflict, untouched",
        view(
            voiceprint=ABSENT,
            identity_ready=True,
            audios={"aa": AudioSeen("h-aa", "available", identity="eve")},
        ),
        Done(
            Outcome.CONFLICT,
            Step.AUDIO,
            "audio h-aa (sha256 aa…) is linked to identity 'eve', not 'cust-1'; left untouched",
        ),
    ),
    (
        "all audios available: create the voiceprint",
        view(voiceprint=ABSENT, identity_ready=True, audios=AVAILABLE),
        CreateVoiceprint(),
    ),
    ("voiceprint exists: learn which audios it holds", ready(), ListVoiceprintAudios()),
    ("add the missing audio only", ready(held=("aa",), listed=True), AddAudio("bb", "h-bb")),
    (
        "membership by content: an audio with our sha is ours whatever its handle",
        ready(
            audios={**AVAILABLE, "aa": AudioSeen("h-other", "available")}, held=("aa",), listed=True
        ),
        AddAudio("bb", "h-bb"),
    ),
    (
        "all added by us: list again right before compute",
        ready(voiceprint=vp("computable", count=2, voice=9.0), held=BOTH, listed=False),
        ListVoiceprintAudios(),
    ),
    (
        "the listing is exactly the manifest's files and computable: compute",
        ready(voiceprint=vp("computable", count=2, voice=9.0), held=BOTH, listed=True),
        Compute(),
    ),
    (
        "the same content twice: conflict with both lists, not computed",
        ready(
            voiceprint=vp("computable", count=3, voice=9.0), held=("aa", "aa", "bb"), listed=True
        ),
        Done(
            Outcome.CONFLICT,
            Step.VOICEPRINT,
            "voiceprint 'main' holds [sha256 aa, sha256 aa, sha256 bb], the manifest lists "
            "[sha256 aa, sha256 bb]; not computed, left untouched",
        ),
    ),
    (
        "a foreign audio: conflict with both lists, not computed",
        ready(
            voiceprint=vp("computable", count=3, voice=9.0), held=("?h-zz", "aa", "bb"), listed=True
        ),
        Done(
            Outcome.CONFLICT,
            Step.VOICEPRINT,
            "voiceprint 'main' holds [audio h-zz (not uploaded by this worker), sha256 aa, "
            "sha256 bb], the manifest lists [sha256 aa, sha256 bb]; not computed, left untouched",
        ),
    ),
    (
        "all added but not computable: fail with the voice shortfall",
        ready(voiceprint=vp("notComputable", count=2, voice=3.1), held=BOTH, listed=True),
        Done(Outcome.FAILED, Step.COMPUTE, "total voice 3.1 s < 4.5 s"),
    ),
    (
        "credits exhausted: skip, do not compute",
        ready(
            voiceprint=vp("computable", count=2, voice=9.0),
            held=BOTH,
            listed=True,
            credits_exhausted=True,
        ),
        Done(Outcome.SKIPPED, Step.COMPUTE, "credits exhausted: compute paused"),
    ),
    (
        "compute accepted, still computable: wait for it",
        ready(
            voiceprint=vp("computable", count=2, voice=9.0),
            held=BOTH,
            computed_here=True,
            compute_accepted=True,
        ),
        AwaitCompute(0.2),
    ),
    (
        "computed by us: validate",
        view(voiceprint=vp("computed", count=2), computed_here=True),
        Validate(),
    ),
    (
        "computed by us and validated: enrolled",
        view(voiceprint=vp("computed", count=2), computed_here=True, validated=True),
        Done(Outcome.ENROLLED),
    ),
    (
        "computed before us: learn from which audios",
        view(voiceprint=vp("computed", count=2)),
        ListVoiceprintAudios(),
    ),
    (
        "computed before us from the same audios: unchanged",
        view(voiceprint=vp("computed", count=2), held=BOTH),
        Done(Outcome.UNCHANGED),
    ),
    (
        "computed before us from other audios: conflict with both lists",
        view(voiceprint=vp("computed", count=1), held=("zz",)),
        Done(
            Outcome.CONFLICT,
            Step.VOICEPRINT,
            "voiceprint 'main' was computed earlier from [sha256 zz], the manifest lists "
            "[sha256 aa, sha256 bb]; left untouched (existing: overwrite replaces it, skip "
            "keeps it)",
        ),
    ),
]


@pytest.mark.parametrize(("name", "given", "expected"), CASES, ids=[c[0] for c in CASES])
def test_decide(name: str, given: View, expected: object) -> None:
    assert decide(given) == expected


def test_computed_with_other_model_is_conflict_and_untouched() -> None:
    action = decide(view(voiceprint=vp("computed", model="digital/v1", count=2)))
    assert isinstance(action, Done) and action.outcome is Outcome.CONFLICT
    assert "digital/v1" in action.reason


def test_not_computable_names_min_audios_shortfall() -> None:
    plan = replace(PLAN, min_audios=3)
    given = ready(plan=plan, voiceprint=vp(count=2, voice=9.0), held=BOTH, listed=True)
    assert decide(given) == Done(Outcome.FAILED, Step.COMPUTE, "2 audios added < minAudios 3")


def test_uncomputed_voiceprint_with_other_min_audios_is_conflict() -> None:
    existing = VoiceprintSeen("notComputable", "phone/v1", 0, None, min_audios=3)
    action = decide(view(voiceprint=existing, audios=AVAILABLE))
    assert isinstance(action, Done) and action.outcome is Outcome.CONFLICT
    assert "minAudios 3" in action.reason


# --- walks: observations in, actions out -------------------------------------------------------


def walk(observations: list, start: View | None = None) -> tuple[View, list[str]]:
    """Feed each action's observations through `advance`; the kinds of action decided."""
    current = start or view()
    kinds = [type(decide(current)).__name__]
    for obs in observations:
        current = advance(
            current, action_key(decide(current)), obs if isinstance(obs, list) else [obs]
        )
        kinds.append(type(decide(current)).__name__)
    return current, kinds


def test_happy_path_walk_for_a_new_identity() -> None:
    computable = vp("computable", count=2, voice=9.0)
    final, kinds = walk(
        [
            IdentityReady(fresh=True),
            SawAudio("aa", AudioSeen("h-aa", "avaitingFile")),
            SawAudio("aa", AudioSeen("h-aa", "available", received=True)),
            SawAudio("bb", AudioSeen("h-bb", "avaitingFile")),
            SawAudio("bb", AudioSeen("h-bb", "available", received=True)),
            [SawVoiceprint(vp()), SawVoiceprintAudios(())],
            Added("aa", "h-aa"),
            Added("bb", "h-bb", computable),
            SawVoiceprintAudios(BOTH),
            Computed(vp("computed", count=2, voice=9.0)),
        ]
    )
    # A fresh identity (201) skips the voiceprint read and the alias searches; the compute's
    # answer validates, and the listing right before compute is the only extra read.
    assert kinds == [
        "EnsureIdentity",
        "CreateAudio",
        "UploadFile",
        "CreateAudio",
        "UploadFile",
        "CreateVoiceprint",
        "AddAudio",
        "AddAudio",
        "ListVoiceprintAudios",
        "Compute",
        "Done",
    ]
    assert decide(final) == Done(Outcome.ENROLLED) and final.stalls == ()


def test_async_walk_waits_for_files_and_for_the_compute_with_doubling_delays() -> None:
    start = view(voiceprint=ABSENT, identity_ready=True, audios=dict.fromkeys(BOTH, ABSENT))
    processing = {sha: AudioSeen(f"h-{sha}", "avaitingFile", received=True) for sha in BOTH}
    current, kinds = walk(
        [
            SawAudio("aa", AudioSeen("h-aa", "avaitingFile")),
            SawAudio("aa", processing["aa"]),
            SawAudio("bb", AudioSeen("h-bb", "avaitingFile")),
            SawAudio("bb", processing["bb"]),
            [SawAudio("aa", AudioSeen("h-aa", "avaitingFile")), Polled("audio:aa", 10.2)],
            [SawAudio("aa", AVAILABLE["aa"]), Polled("audio:aa", 10.6)],
            [SawAudio("bb", AVAILABLE["bb"]), Polled("audio:bb", 10.8)],
        ],
        start,
    )
    assert kinds == [
        "CreateAudio", "UploadFile", "CreateAudio", "UploadFile",
        "AwaitAudio", "AwaitAudio", "AwaitAudio", "CreateVoiceprint",
    ]  # fmt: skip
    # A read that still says avaitingFile keeps what we know: the server has the file.
    assert current.audio("aa") == AVAILABLE["aa"]
    assert current.waits["audio:aa"].polls == 2 and current.stalls == ()

    computing = ready(voiceprint=vp("computable", count=2, voice=9.0), held=BOTH, listed=True)
    current = advance(
        computing,
        action_key(Compute()),
        [ComputeAccepted(), SawVoiceprint(vp("computable", count=2, voice=9.0))],
    )
    delays = []
    for now in (1.0, 2.0, 3.0):
        action = decide(current)
        assert isinstance(action, AwaitCompute)
        delays.append(action.delay)
        current = advance(
            current,
            action_key(action),
            [Validated(vp("computable", count=2)), Polled("compute", now)],
        )
    assert delays == [0.2, 0.4, 0.8]
    current = advance(
        current, ("compute", "wait"), [Validated(vp("computed", count=2)), Polled("compute", 4.0)]
    )
    assert decide(current) == Done(Outcome.ENROLLED)  # the settling read validated it


@pytest.mark.parametrize(
    ("polls", "delay"), [(0, 0.2), (1, 0.4), (2, 0.8), (3, 1.6), (4, 3.2), (5, 5.0), (40, 5.0)]
)
def test_wait_delays_double_from_0_2_to_5_seconds(polls: int, delay: float) -> None:
    assert Limits().wait_delay(polls) == pytest.approx(delay)


def test_processing_past_the_timeout_fails_and_says_so() -> None:
    limits = Limits(processing_timeout=30)
    current = view(
        limits=limits,
        voiceprint=ABSENT,
        identity_ready=True,
        audios={**AVAILABLE, "bb": AudioSeen("h-bb", "avaitingFile", received=True)},
    )
    for now in (100.0, 120.0, 129.9):
        current = observe(current, Polled("audio:bb", now))
        assert isinstance(decide(current), AwaitAudio)
    current = observe(current, Polled("audio:bb", 130.0))
    assert decide(current) == Done(
        Outcome.FAILED,
        Step.UPLOAD,
        "audio h-bb (sha256 bb…) still processing after 30 s "
        "(4 reads; ENROLLER_PROCESSING_TIMEOUT is 30 s)",
    )


def test_existing_identity_reconciles_before_acting() -> None:
    _, kinds = walk(
        [
            IdentityReady(fresh=False),
            SawVoiceprint(ABSENT),
            SawAudio("aa", AudioSeen("h-aa", "available")),  # found by its alias
            SawAudio("bb", ABSENT),
        ]
    )
    assert kinds == ["EnsureIdentity", "GetVoiceprint", "FindAudio", "FindAudio", "CreateAudio"]


def test_unknown_create_outcome_looks_up_before_creating_again() -> None:
    current = view(voiceprint=ABSENT, identity_ready=True, audios={"aa": ABSENT})
    assert decide(current) == CreateAudio("aa")
    current = observe(current, AudioOutcomeUnknown("aa"))
    assert decide(current) == FindAudio("aa")
    assert current.attempts == {"audio:aa": 1}


# --- the cap: observations without progress ---------------------------------------------------

LOOPS = [
    (
        "an add-audio 409 that the reads do not explain",
        ready(held=("aa",), listed=True),
        [SawVoiceprintAudios(("aa",)), SawVoiceprint(vp(count=1)), SawAudio("bb", AVAILABLE["bb"])],
        "add audio h-bb",
    ),
    (
        "an upload answered 409 whose audio still reads as never having had a file",
        view(
            voiceprint=ABSENT,
            identity_ready=True,
            audios={**AVAILABLE, "bb": AudioSeen("h-bb", "avaitingFile")},
        ),
        [SawAudio("bb", AudioSeen("h-bb", "avaitingFile"))],
        "upload h-bb",
    ),
    (
        "a compute 409 whose read shows the voiceprint computable and nothing else",
        ready(voiceprint=vp("computable", count=2, voice=9.0), held=BOTH, listed=True),
        [SawVoiceprint(vp("computable", count=2, voice=9.0))],
        "compute",
    ),
]


@pytest.mark.parametrize(("name", "start", "answer", "loop"), LOOPS, ids=[c[0] for c in LOOPS])
def test_a_loop_without_progress_is_capped_and_named(
    name: str, start: View, answer: list, loop: str
) -> None:
    current = start
    for _ in range(200):
        action = decide(current)
        if isinstance(action, Done):
            break
        current = advance(current, action_key(action), answer)
    assert len(current.stalls) == 60  # the default cap, then the failure
    assert isinstance(action, Done) and action.outcome is Outcome.FAILED
    assert action.reason.startswith("gave up after 60 actions that made no progress")
    assert f"the loop: {loop} ×60" in action.reason


def test_progress_is_not_a_stall_and_a_return_to_an_old_state_is() -> None:
    start = ready()
    listed = advance(start, ("voiceprint", "list"), [SawVoiceprintAudios(())])
    assert listed.stalls == ()  # something new was learned
    again = advance(listed, ("voiceprint", "list"), [SawVoiceprintAudios(())])
    assert again.stalls == (("voiceprint", "list"),)  # nothing new
    polled = advance(again, ("upload", "wait"), [Polled("audio:aa", 1.0)])
    assert polled.stalls == again.stalls  # waiting is bounded by time, not by the cap


def test_credits_observation_sets_flag() -> None:
    assert observe(view(), CreditsExhausted()).credits_exhausted


@pytest.mark.parametrize("step", [Step.IDENTITY, Step.AUDIO, Step.UPLOAD, Step.ADD_AUDIO])
def test_credits_on_any_call_skips_with_the_servers_message_instead_of_asking_again(
    step: Step,
) -> None:
    midway = view(voiceprint=ABSENT, identity_ready=True)
    assert isinstance(decide(midway), FindAudio)
    after = observe(midway, CreditsExhausted(step, "credits exhausted: Quota exhausted"))
    assert decide(after) == Done(Outcome.SKIPPED, step, "credits exhausted: Quota exhausted")


def test_a_voiceprint_computed_by_someone_else_is_listed_afresh() -> None:
    current = ready(held=BOTH, listed=True)
    current = observe(current, SawVoiceprint(vp("computed", count=3)))
    assert current.held is None and decide(current) == ListVoiceprintAudios()


def test_adds_whose_answers_count_exactly_our_audios_need_no_second_listing() -> None:
    created = ready(held=(), listed=True)  # we created it: empty, by its 201
    one = advance(created, ("add_audio", "a"), [Added("aa", "h-aa", vp(count=1))])
    both = advance(
        one, ("add_audio", "b"), [Added("bb", "h-bb", vp("computable", count=2, voice=9.0))]
    )
    assert both.listed and decide(both) == Compute()
    # One audio more than we added: someone else added one; list before any compute.
    foreign = advance(
        one, ("add_audio", "b"), [Added("bb", "h-bb", vp("computable", count=3, voice=9.0))]
    )
    assert not foreign.listed and decide(foreign) == ListVoiceprintAudios()


def test_validate_with_get_keeps_the_guides_read_after_compute() -> None:
    given = ready(limits=Limits(validate_with_get=True), held=BOTH, listed=True)
    computed = observe(given, Computed(vp("computed", count=2, voice=9.0)))
    assert decide(computed) == Validate()
    validated = observe(computed, Validated(vp("computed", count=2, voice=9.0)))
    assert decide(validated) == Done(Outcome.ENROLLED) and validated.validated_by == "get"
    by_answer = observe(ready(held=BOTH, listed=True), Computed(vp("computed", count=2)))
    assert decide(by_answer) == Done(Outcome.ENROLLED)
    assert by_answer.validated_by == "compute answer"


# --- existing: what a voiceprint computed earlier that differs gets ---------------------------

NAMED = replace(PLAN, shas=("aa" * 32, "bb" * 32), names=("calls/ann-1.wav", "calls/ann-2.wav"))
OLD_SHA = "cc" * 32


def test_conflict_names_manifest_files_by_path_and_sha256() -> None:
    given = view(plan=NAMED, voiceprint=vp("computed", count=1), held=(OLD_SHA,))
    action = decide(given)
    assert isinstance(action, Done) and action.outcome is Outcome.CONFLICT
    assert f"[sha256 {OLD_SHA[:12]} (not in this manifest)]" in action.reason
    assert f"calls/ann-1.wav (sha256 {'aa' * 6}), calls/ann-2.wav (sha256 {'bb' * 6})" in (
        action.reason
    )


def test_skip_keeps_a_voiceprint_with_other_audios_and_says_what_differs() -> None:
    plan = replace(NAMED, existing="skip")
    action = decide(view(plan=plan, voiceprint=vp("computed", count=1), held=(OLD_SHA,)))
    assert isinstance(action, Done) and action.outcome is Outcome.KEPT
    assert "calls/ann-1.wav" in action.reason and "kept (existing: skip)" in action.reason


def test_skip_lists_a_voiceprint_with_another_model_first_then_keeps_it() -> None:
    plan = replace(NAMED, existing="skip")
    old = vp("computed", model="default/v1", count=2)
    assert decide(view(plan=plan, voiceprint=old)) == ListVoiceprintAudios()
    action = decide(view(plan=plan, voiceprint=old, held=plan.shas))
    assert isinstance(action, Done) and action.outcome is Outcome.KEPT
    assert "has model default/v1, the manifest asks for phone/v1" in action.reason


def test_skip_and_overwrite_leave_an_identical_voiceprint_unchanged() -> None:
    for existing in ("skip", "overwrite"):
        plan = replace(NAMED, existing=existing)
        given = view(plan=plan, voiceprint=vp("computed", count=2), held=plan.shas)
        assert decide(given) == Done(Outcome.UNCHANGED)


def test_overwrite_hands_a_differing_voiceprint_to_the_swap() -> None:
    plan = replace(NAMED, existing="overwrite")
    old = vp("computed", model="default/v1", count=1)
    action = decide(view(plan=plan, voiceprint=old, held=(OLD_SHA,)))
    assert isinstance(action, Replace)
    assert action.old == old and action.held == (OLD_SHA,)
    assert "default/v1" in action.differs and "calls/ann-2.wav" in action.differs


def test_an_uncomputed_voiceprint_is_finished_whatever_the_policy() -> None:
    for existing in ("skip", "overwrite"):
        plan = replace(PLAN, existing=existing)
        given = ready(plan=plan, voiceprint=vp(count=0), held=(), listed=True)
        assert decide(given) == AddAudio("aa", "h-aa")
