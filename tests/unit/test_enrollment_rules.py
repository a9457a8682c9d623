"""The enrollment upsert as a table: (what is known) → (next action)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from worker.enrollment_rules import (
    ABSENT,
    AddAudio,
    Added,
    AudioOutcomeUnknown,
    AudioSeen,
    Compute,
    Computed,
    CreateAudio,
    CreateVoiceprint,
    CreditsExhausted,
    Done,
    EnsureIdentity,
    FindAudio,
    GetVoiceprint,
    IdentityReady,
    ListVoiceprintAudios,
    Outcome,
    Plan,
    SawAudio,
    SawVoiceprint,
    SawVoiceprintAudios,
    Step,
    Transient,
    UploadFile,
    Validate,
    Validated,
    View,
    VoiceprintSeen,
    decide,
    exhausted_attempts,
    observe,
)

PLAN = Plan("cust-1", "main", "phone/v1", 1, True, ("aa", "bb"))
AVAILABLE = {"aa": AudioSeen("h-aa", "available"), "bb": AudioSeen("h-bb", "available")}


def vp(state: str = "notComputable", model: str = "phone/v1", count: int = 0, voice=None):
    return VoiceprintSeen(state=state, model=model, audio_count=count, total_voice_s=voice)  # type: ignore[arg-type]


def view(**kw) -> View:
    return View(plan=kw.pop("plan", PLAN), **kw)


CASES = [
    ("nothing known: create the identity first", view(), EnsureIdentity(create=True)),
    (
        "identity exists (409): read the voiceprint",
        view(identity_ready=True),
        GetVoiceprint(),
    ),
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
            voiceprint=ABSENT,
            identity_ready=True,
            audios={"aa": AudioSeen("h-aa", "avaitingFile")},
        ),
        UploadFile("aa", "h-aa"),
    ),
    (
        "server could not decode: fail at upload",
        view(
            voiceprint=ABSENT,
            identity_ready=True,
            audios={"aa": AudioSeen("h-aa", "notAvailable")},
        ),
        Done(
            Outcome.FAILED,
            Step.UPLOAD,
            "audio h-aa (sha256 aa…) could not be decoded by the server",
        ),
    ),
    (
        "all audios available: create the voiceprint",
        view(voiceprint=ABSENT, identity_ready=True, audios=AVAILABLE),
        CreateVoiceprint(),
    ),
    (
        "voiceprint exists: learn which audios it has",
        view(voiceprint=vp(), identity_ready=True, audios=AVAILABLE),
        ListVoiceprintAudios(),
    ),
    (
        "add the missing audio only",
        view(
            voiceprint=vp(count=1),
            audios=AVAILABLE,
            added=frozenset({"h-aa"}),
            added_known=True,
        ),
        AddAudio("bb", "h-bb"),
    ),
    (
        "all added and computable: compute",
        view(
            voiceprint=vp("computable", count=2, voice=9.0),
            audios=AVAILABLE,
            added=frozenset({"h-aa", "h-bb"}),
            added_known=True,
        ),
        Compute(),
    ),
    (
        "all added but not computable: fail with the voice shortfall",
        view(
            voiceprint=vp("notComputable", count=2, voice=3.1),
            audios=AVAILABLE,
            added=frozenset({"h-aa", "h-bb"}),
            added_known=True,
        ),
        Done(Outcome.FAILED, Step.COMPUTE, "total voice 3.1 s < 4.5 s"),
    ),
    (
        "credits exhausted: skip, do not compute",
        view(
            voiceprint=vp("computable", count=2, voice=9.0),
            audios=AVAILABLE,
            added=frozenset({"h-aa", "h-bb"}),
            added_known=True,
            credits_exhausted=True,
        ),
        Done(Outcome.SKIPPED, Step.COMPUTE, "credits exhausted: compute paused"),
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
        "validated with the wrong audio count: failed",
        view(voiceprint=vp("computed", count=1), computed_here=True, validated=True),
        Done(Outcome.FAILED, Step.VALIDATE, "computed voiceprint holds 1 audios, expected 2"),
    ),
    (
        "computed before us: check its audios, upload nothing",
        view(voiceprint=vp("computed", count=2)),
        ListVoiceprintAudios(),
    ),
    (
        "computed before us from the same audios: unchanged",
        view(voiceprint=vp("computed", count=2), computed_audio_shas=frozenset({"aa", "bb"})),
        Done(Outcome.UNCHANGED),
    ),
]


@pytest.mark.parametrize(("name", "given", "expected"), CASES, ids=[c[0] for c in CASES])
def test_decide(name: str, given: View, expected: object) -> None:
    assert decide(given) == expected


def test_computed_with_other_model_is_conflict_and_untouched() -> None:
    action = decide(view(voiceprint=vp("computed", model="digital/v1", count=2)))
    assert isinstance(action, Done) and action.outcome is Outcome.CONFLICT
    assert "digital/v1" in action.reason


def test_computed_from_other_audios_is_conflict() -> None:
    action = decide(view(voiceprint=vp("computed", count=2), computed_audio_shas=frozenset({"zz"})))
    assert isinstance(action, Done) and action.outcome is Outcome.CONFLICT


def test_not_computable_names_min_audios_shortfall() -> None:
    plan = replace(PLAN, min_audios=3)
    action = decide(
        view(
            plan=plan,
            voiceprint=vp("notComputable", count=2, voice=9.0),
            audios=AVAILABLE,
            added=frozenset({"h-aa", "h-bb"}),
            added_known=True,
        )
    )
    assert action == Done(Outcome.FAILED, Step.COMPUTE, "2 audios added < minAudios 3")


def run_to_done(observations: list) -> tuple[View, list]:
    """Feed observations in order and record the actions decided on the way."""
    current = view()
    actions = [decide(current)]
    for obs in observations:
        current = observe(current, obs)
        actions.append(decide(current))
    return current, actions


def test_happy_path_walk_for_a_new_identity() -> None:
    computed = vp("computed", count=2, voice=9.0)
    final, actions = run_to_done(
        [
            IdentityReady(fresh=True),
            SawAudio("aa", AudioSeen("h-aa", "avaitingFile")),
            SawAudio("aa", AudioSeen("h-aa", "available")),
            SawAudio("bb", AudioSeen("h-bb", "avaitingFile")),
            SawAudio("bb", AudioSeen("h-bb", "available")),
            SawVoiceprint(vp()),
            SawVoiceprintAudios(frozenset(), frozenset()),
            Added("aa", "h-aa"),
            Added("bb", "h-bb", vp("computable", count=2, voice=9.0)),
            Computed(computed),
            Validated(computed),
        ]
    )
    kinds = [type(a).__name__ for a in actions]
    # A fresh identity (201) skips the voiceprint read and the alias searches.
    assert kinds == [
        "EnsureIdentity",
        "CreateAudio",
        "UploadFile",
        "CreateAudio",
        "UploadFile",
        "CreateVoiceprint",
        "ListVoiceprintAudios",
        "AddAudio",
        "AddAudio",
        "Compute",
        "Validate",
        "Done",
    ]
    assert actions[-1] == Done(Outcome.ENROLLED)
    assert final.computed_here


def test_existing_identity_reconciles_before_acting() -> None:
    _, actions = run_to_done(
        [
            IdentityReady(fresh=False),
            SawVoiceprint(ABSENT),
            SawAudio("aa", AudioSeen("h-aa", "available")),  # found by its alias
            SawAudio("bb", ABSENT),
        ]
    )
    kinds = [type(a).__name__ for a in actions]
    assert kinds == ["EnsureIdentity", "GetVoiceprint", "FindAudio", "FindAudio", "CreateAudio"]


def test_unknown_create_outcome_looks_up_before_creating_again() -> None:
    current = view(voiceprint=ABSENT, identity_ready=True, audios={"aa": ABSENT})
    assert decide(current) == CreateAudio("aa")
    current = observe(current, AudioOutcomeUnknown("aa"))
    assert decide(current) == FindAudio("aa")
    assert current.attempts == {"audio:aa": 1}


def test_repeated_transients_are_bounded() -> None:
    current = view()
    for _ in range(4):
        current = observe(current, Transient(Step.VOICEPRINT, "503"))
    assert exhausted_attempts(current) == "voiceprint"


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


def test_uncomputed_voiceprint_with_other_min_audios_is_conflict() -> None:
    existing = VoiceprintSeen("notComputable", "phone/v1", 0, None, min_audios=3)
    action = decide(view(voiceprint=existing, audios=AVAILABLE))
    assert isinstance(action, Done) and action.outcome is Outcome.CONFLICT
    assert "minAudios 3" in action.reason


def test_uncomputed_voiceprint_holding_foreign_audios_is_conflict_not_computed() -> None:
    current = observe(
        view(voiceprint=vp(count=2), audios=AVAILABLE),
        SawVoiceprintAudios(frozenset({"h-aa", "h-zz"}), frozenset({"aa", "zz"})),
    )
    action = decide(current)
    assert isinstance(action, Done) and action.outcome is Outcome.CONFLICT
    assert "1 audio(s)" in action.reason
