"""Voice ID manifests (issue 29): the mapping onto our enrollments, the derived handle, each of
Voice ID's rules with its located error, the streamed reading of a large file, the output in
Voice ID's shape and the retry manifest; parsing is total over any value in any field."""

from __future__ import annotations

import io
import json
import tempfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.manifests import collected, parse_manifest
from tests.unit.test_manifest_properties import JSON_VALUES, _check_total
from worker.base.streamout import EncodedText
from worker.job.input import _planned
from worker.job.voiceid_output import (
    error_code,
    voiceid_path,
    voiceid_status,
    write_voiceid_output,
)
from worker.journal.records import EnrollmentOutcome, ErrorInfo, Outcome, Step
from worker.manifest.models import Enrollment, ManifestDefaults, RejectedEnrollment
from worker.manifest.read import open_manifest
from worker.manifest.values import handle_problem
from worker.manifest.voiceid import is_voiceid, speaker_handle, unknown_field
from worker.manifest.voiceid_retry import write_voiceid_retry

ROOT = Path("/srv/audio")
DEFAULTS = ManifestDefaults(audio_root=ROOT, owner="acme", space="calls", model="phone/v1")
PROPERTY = settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)


def doc(*requests: Any, **top: Any) -> dict[str, Any]:
    return {"Version": "1.0", "SpeakerEnrollmentRequests": list(requests), **top}


def req(rid: Any = "r1", speaker: Any = "cust-1", *specs: Any) -> dict[str, Any]:
    audios = list(specs) or [{"S3Uri": "calls/a.wav", "ChannelId": 0}]
    return {"RequestId": rid, "SpeakerId": speaker, "AudioSpecifications": audios}


def parsed(document: Any, defaults: ManifestDefaults = DEFAULTS) -> Any:
    return parse_manifest(json.dumps(document).encode(), "v.json", defaults)


def problems_of(document: Any, defaults: ManifestDefaults = DEFAULTS) -> list[str]:
    return [str(p) for p in parsed(document, defaults).problems]


# --- the mapping ----------------------------------------------------------------------------


def test_a_request_becomes_an_enrollment() -> None:
    stereo = {"S3Uri": "calls/c1.wav", "ChannelId": 1}
    mono = {"S3Uri": "s3://bucket/key.wav"}
    result = parsed(doc(req("r-7", "cust-7", stereo, mono)))
    [e] = result.enrollments
    assert result.kind == "voiceid" and not result.problems
    assert (e.owner, e.space, e.identity, e.voiceprint, e.model) == (
        "acme",
        "calls",
        "cust-7",
        "main",
        "phone/v1",
    )
    assert (e.request_id, e.speaker_id) == ("r-7", "cust-7")
    assert e.audio_names == ("calls/c1.wav", "s3://bucket/key.wav")  # an object, by its address
    assert e.channels == (1, None)
    assert e.source == "SpeakerEnrollmentRequests[0]"


def test_the_model_is_the_settings_one() -> None:
    defaults = DEFAULTS.model_copy(update={"model": "default/v1"})
    [e] = parsed(doc(req()), defaults).enrollments
    assert e.model == "default/v1"


@pytest.mark.parametrize(
    ("config", "setting", "policy"),
    [
        (None, "conflict", "skip"),  # Voice ID's default: it has no conflict action
        (None, "overwrite", "overwrite"),  # an explicit setting other than conflict applies
        ({}, "conflict", "skip"),
        ({"ExistingEnrollmentAction": "SKIP"}, "overwrite", "skip"),
        ({"ExistingEnrollmentAction": "OVERWRITE"}, "conflict", "overwrite"),
        ({"ExistingEnrollmentAction": "overwrite"}, "skip", "overwrite"),
    ],
)
def test_the_existing_policy(config: Any, setting: str, policy: str) -> None:
    top = {} if config is None else {"EnrollmentConfig": config}
    defaults = DEFAULTS.model_copy(update={"existing": setting})
    [e] = parsed(doc(req(), **top), defaults).enrollments
    assert e.existing == policy


def test_which_documents_are_voice_id() -> None:
    assert is_voiceid({"Version", "SpeakerEnrollmentRequests"})
    assert is_voiceid({"SpeakerEnrollmentRequests"}) and is_voiceid({"Version"})
    assert not is_voiceid({"Version", "enrollments"}) and not is_voiceid({"identity"})


# --- SpeakerId and its handle --------------------------------------------------------------


def test_a_speaker_id_that_is_no_handle_gets_a_derived_one() -> None:
    handle = speaker_handle("Ann Lee +1 555 0100")
    assert handle == speaker_handle("Ann Lee +1 555 0100")  # deterministic
    assert handle != speaker_handle("Ann Lee +1 555 0101")
    assert handle.startswith("vid-") and len(handle) == 36 and handle_problem(handle) is None
    assert "555" not in handle and "ann" not in handle
    [e] = parsed(doc(req("r1", "Ann Lee +1 555 0100"))).enrollments
    assert (e.identity, e.speaker_id) == (handle, "Ann Lee +1 555 0100")
    [valid] = parsed(doc(req("r1", "ann-lee"))).enrollments
    assert valid.identity == "ann-lee"  # a valid handle is used as is


def test_strict_refuses_a_speaker_id_that_is_no_handle() -> None:
    strict = DEFAULTS.model_copy(update={"speaker_handles": "strict"})
    result = parsed(doc(req("r1", "Ann Lee")), strict)
    [rejected] = result.rejected
    assert isinstance(rejected, RejectedEnrollment) and rejected.request_id == "r1"
    assert [str(p) for p in result.problems] == [
        'v.json SpeakerEnrollmentRequests[0]: SpeakerId "Ann Lee": handles are lowercase '
        "letters, digits and hyphens (ENROLLER_SPEAKER_HANDLES=strict; derive makes one)"
    ]


# --- Voice ID's rules -------------------------------------------------------------------------

P0 = "v.json SpeakerEnrollmentRequests[0]"


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            doc(req(), req("r1", "cust-2", {"S3Uri": "b.wav"})),
            [
                'v.json SpeakerEnrollmentRequests[1]: RequestId "r1": is already used at '
                "SpeakerEnrollmentRequests[0]; RequestIds are unique"
            ],
        ),
        (
            doc(req("r1", "cust-1", *[{"S3Uri": f"{i}.wav"} for i in range(11)])),
            [f"{P0}: AudioSpecifications: 11 listed; Voice ID takes 1 to 10"],
        ),
        (
            doc({"RequestId": "r1", "SpeakerId": "c", "AudioSpecifications": []}),
            [f"{P0}: AudioSpecifications: none listed; Voice ID takes 1 to 10"],
        ),
        (
            doc(req("r1", "c", {"S3Uri": "a.wav", "ChannelId": 2})),
            [f"{P0}: AudioSpecifications[0].ChannelId 2: must be 0 or 1"],
        ),
        (
            doc(req("r1", "c", {"S3Uri": "a.wav", "ChannelId": True})),
            [f"{P0}: AudioSpecifications[0].ChannelId true: must be 0 or 1"],
        ),
        (
            doc(req("r1", "c", {"S3uri": "a.wav"})),
            [
                f'{P0}: AudioSpecifications[0].S3uri: unknown field; did you mean "S3Uri"? '
                "known fields are S3Uri, ChannelId",
                f"{P0}: AudioSpecifications[0].S3Uri: is missing",
            ],
        ),
        (
            doc({"RequestId": "r1", "SpeakerID": "c", "AudioSpecifications": [{"S3Uri": "a"}]}),
            [
                f'{P0}: SpeakerID: unknown field; did you mean "SpeakerId"? known fields are '
                "RequestId, SpeakerId, AudioSpecifications",
                f"{P0}: SpeakerId: is missing",
            ],
        ),
        (
            doc({"SpeakerId": "c", "AudioSpecifications": [{"S3Uri": "a.wav"}]}),
            [f"{P0}: RequestId: is missing"],
        ),
        (doc(req("", "c")), [f'{P0}: RequestId "": must be non-empty text']),
        (doc(req("r1", 7)), [f"{P0}: SpeakerId 7: must be non-empty text"]),
        (
            doc(req("r1", "x" * 257)),
            [f'{P0}: SpeakerId "{"x" * 59}…": is 257 characters; Voice ID allows 256'],
        ),
        (
            doc({"RequestId": "r1", "SpeakerId": "c", "AudioSpecifications": "a.wav"}),
            [f'{P0}: AudioSpecifications "a.wav": must be a list of {{S3Uri, ChannelId}}'],
        ),
        (
            doc(req("r1", "c", {"S3Uri": 5})),
            [
                f"{P0}: AudioSpecifications[0].S3Uri 5: must be text: s3://bucket/key, "
                "or a path in the audio root"
            ],
        ),
        (
            doc(req("r1", "c", {"S3Uri": "../x.wav"})),
            [
                f'{P0}: AudioSpecifications[0] "../x.wav": leads outside the audio root '
                "(/srv/x.wav is not under /srv/audio: ENROLLER_AUDIO_ROOT)"
            ],
        ),
        (
            doc(7),
            [f"{P0}: 7: must be a JSON object with RequestId, SpeakerId, AudioSpecifications"],
        ),
        (
            doc(req("r1", "ann"), req("r2", "ann", {"S3Uri": "b.wav"})),
            [
                'v.json SpeakerEnrollmentRequests[1]: SpeakerId "ann": voiceprint "main" is '
                "already listed at SpeakerEnrollmentRequests[0]; a voiceprint may appear once "
                "per job"
            ],
        ),
        (
            doc(req("r1", "ann"), req("r2", "bob")),
            [
                'v.json SpeakerEnrollmentRequests[1]: AudioSpecifications "calls/a.wav": also '
                "listed for another identity at SpeakerEnrollmentRequests[0]; an audio can "
                "belong to one identity only"
            ],
        ),
    ],
)
def test_each_rule_is_a_located_error(document: Any, expected: list[str]) -> None:
    assert problems_of(document) == expected


@pytest.mark.parametrize(
    ("top", "expected"),
    [
        (
            {"Version": "2.0"},
            ['v.json: Version "2.0": must be "1.0"'],
        ),
        (
            {"EnrollmentConfig": {"ExistingEnrollmentActon": "SKIP"}},
            [
                "v.json: EnrollmentConfig.ExistingEnrollmentActon: unknown field; did you mean "
                '"ExistingEnrollmentAction"? known fields are ExistingEnrollmentAction'
            ],
        ),
        (
            {"EnrollmentConfig": {"ExistingEnrollmentAction": "REPLACE"}},
            [
                'v.json: EnrollmentConfig.ExistingEnrollmentAction "REPLACE": '
                "must be SKIP or OVERWRITE"
            ],
        ),
        (
            {"EnrollmentConfig": {"FraudDetectionConfig": {"WatchlistId": "w"}}},
            [
                "v.json: EnrollmentConfig.FraudDetectionConfig: this API has no fraud watchlist "
                '(README "Coming from Amazon Connect Voice ID")'
            ],
        ),
        ({"EnrollmentConfig": "SKIP"}, ['v.json: EnrollmentConfig "SKIP": must be an object']),
        (
            {"SpeakerEnrolmentRequests": []},
            [
                "v.json: SpeakerEnrolmentRequests: unknown field; did you mean "
                '"SpeakerEnrollmentRequests"? known fields are Version, '
                "SpeakerEnrollmentRequests, EnrollmentConfig"
            ],
        ),
    ],
)
def test_each_file_rule_is_an_error(top: dict[str, Any], expected: list[str]) -> None:
    assert problems_of(doc(req(), **top)) == expected


def test_the_file_needs_its_version_and_requests() -> None:
    assert problems_of({"SpeakerEnrollmentRequests": [req()]}) == [
        'v.json: Version: is missing; Voice ID manifests say "1.0"'
    ]
    assert problems_of({"Version": "1.0"}) == ["v.json: SpeakerEnrollmentRequests: is missing"]
    assert problems_of(doc()) == ["v.json: SpeakerEnrollmentRequests: no requests"]
    assert problems_of({"Version": "1.0", "SpeakerEnrollmentRequests": {}}) == [
        "v.json: SpeakerEnrollmentRequests: must be a list of requests"
    ]


def test_unknown_field_names_the_closest_only_when_close() -> None:
    assert unknown_field("requestid", ["RequestId", "SpeakerId"]).startswith(
        'unknown field; did you mean "RequestId"?'
    )
    assert unknown_field("zzz", ["RequestId"]) == "unknown field; known fields are RequestId"


# --- a large file, streamed -----------------------------------------------------------------


def _both_ways(document: Any, tmp_path: Path) -> tuple[Any, Any]:
    path = tmp_path / "v.json"
    path.write_text(json.dumps(document))
    whole = collected(open_manifest(path, DEFAULTS, "v.json"))
    streamed = collected(open_manifest(path, DEFAULTS, "v.json", stream_json_from=0))
    return whole, streamed


def _view(result: Any) -> Any:
    """What must agree both ways (a non-scalar value is shown as "a list or object" when
    streamed, since the first pass keeps only scalars)."""
    return (
        result.kind,
        [(p.place, p.field, p.reason) for p in result.problems],
        [(e.key, e.request_id, e.speaker_id, e.existing, e.channels) for e in result.enrollments],
    )


@pytest.mark.parametrize(
    "document",
    [
        doc(
            req("r1", "Ann"),
            req("r1", "bob"),
            req("r3", "cust-3", {"S3Uri": "c.wav", "ChannelId": 1}),
            EnrollmentConfig={"ExistingEnrollmentAction": "OVERWRITE"},
        ),
        doc(req(), Version=[1], EnrollmentConfig={"ExistingEnrollmentAction": {"a": 1}}),
        doc(req(), EnrollmentConfig=["SKIP"], Extra=1),
        {"Version": "1.0", "SpeakerEnrollmentRequests": 5},
    ],
)
def test_a_streamed_file_reads_as_a_whole_one(document: Any, tmp_path: Path) -> None:
    whole, streamed = _both_ways(document, tmp_path)
    assert _view(streamed) == _view(whole)
    assert whole.kind == "voiceid"
    assert whole.problems or whole.enrollments


# --- the output and the retry manifest ------------------------------------------------------


def row(outcome: Outcome, rid: str | None = "r1", **fields: Any) -> EnrollmentOutcome:
    return EnrollmentOutcome(
        key="acme/calls/cust-1/main",
        identity="cust-1",
        voiceprint="main",
        owner="acme",
        space="calls",
        source="SpeakerEnrollmentRequests[0]",
        outcome=outcome.value,
        request_id=rid,
        speaker_id="Cust 1" if rid else None,
        **fields,
    )


def failed(step: Step, status: int | None = None) -> EnrollmentOutcome:
    return row(Outcome.FAILED, error=ErrorInfo(step=step.value, status=status, reason="why"))


@pytest.mark.parametrize(
    ("outcome", "code"),
    [
        (failed(Step.PREFLIGHT), 400),
        (failed(Step.ADD_AUDIO, 422), 400),  # too little speech, as the API says it
        (failed(Step.UPLOAD, 413), 400),
        (row(Outcome.SKIPPED), 402),
        (row(Outcome.CONFLICT, error=ErrorInfo(step="voiceprint", reason="differs")), 409),
        (failed(Step.COMPUTE, 503), 500),
        (failed(Step.IDENTITY, 404), 500),
        (row(Outcome.FAILED), 500),
    ],
)
def test_error_codes(outcome: EnrollmentOutcome, code: int) -> None:
    assert error_code(outcome) == code


def test_the_job_status_in_voice_id_words() -> None:
    assert voiceid_status({"enrolled": 2, "unchanged": 1}) == "COMPLETED"
    assert voiceid_status({"enrolled": 2, "failed": 1}) == "COMPLETED_WITH_ERRORS"
    assert voiceid_status({"kept": 1, "conflict": 1}) == "COMPLETED_WITH_ERRORS"
    assert voiceid_status({"failed": 2, "skipped": 1}) == "FAILED"
    assert voiceid_path(Path("/q/reports/j-1.report.json")) == Path("/q/reports/j-1.voiceid.json")
    assert voiceid_path(Path("/q/r/j-1-2.report.json")).name == "j-1-2.voiceid.json"


def test_the_output_file(tmp_path: Path) -> None:
    rows = [
        row(Outcome.ENROLLED, "a", voiceprint_id="vp-a"),
        row(Outcome.UNCHANGED, "b", voiceprint_id="vp-b"),
        row(Outcome.KEPT, "c", voiceprint_id="vp-c"),
        row(Outcome.REPLACED, "d", voiceprint_id="vp-d"),
        failed(Step.PREFLIGHT),
        row(
            Outcome.FAILED, None, error=ErrorInfo(step="preflight", reason="RequestId: is missing")
        ),
    ]
    walks = []

    def walk() -> list[EnrollmentOutcome]:
        walks.append(1)
        return rows

    out = tmp_path / "j.voiceid.json"
    write_voiceid_output(out, walk)
    assert len(walks) == 2  # one walk per list: no row is kept between them
    assert json.loads(out.read_text()) == {
        "Version": "1.0",
        "Errors": [
            {"RequestId": "r1", "ErrorCode": 400, "ErrorMessage": "why"},
            {
                "RequestId": "SpeakerEnrollmentRequests[0]",
                "ErrorCode": 400,
                "ErrorMessage": "RequestId: is missing",
            },
        ],
        "SuccessfulEnrollments": [
            {
                "RequestId": rid,
                "GeneratedSpeakerId": f"vp-{rid}",
                "CustomerSpeakerId": "Cust 1",
                "EnrollmentStatus": status,
            }
            for rid, status in (
                ("a", "NEW_ENROLLMENT"),
                ("b", "DUPLICATE_SKIPPED"),
                ("c", "DUPLICATE_SKIPPED"),
                ("d", "ENROLLMENT_OVERWRITE"),
            )
        ],
    }


def test_the_output_is_written_with_flat_memory(tmp_path: Path) -> None:
    """50 000 rows would hold ~50 MB as models; written streamed, the peak stays small."""
    n = 50_000

    def walk() -> Iterator[EnrollmentOutcome]:
        for i in range(n):
            if i % 10:
                yield row(Outcome.ENROLLED, f"r{i}", voiceprint_id=f"vp-{i}")
            else:
                yield failed(Step.PREFLIGHT)

    out = tmp_path / "j.voiceid.json"
    tracemalloc.start()
    try:
        write_voiceid_output(out, walk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    written = json.loads(out.read_text())
    assert (len(written["Errors"]), len(written["SuccessfulEnrollments"])) == (n // 10, n - n // 10)
    assert peak < 4 * 2**20, peak


def test_the_retry_manifest_is_a_voice_id_manifest_that_reads_back() -> None:
    document = doc(
        req("r1", "Ann Lee", {"S3Uri": "calls/c1.wav", "ChannelId": 1}, {"S3Uri": "a.wav"}),
        req("r2", "bob"),
        EnrollmentConfig={"ExistingEnrollmentAction": "OVERWRITE"},
    )
    first = parsed(document).enrollments
    out = io.BytesIO()
    write_voiceid_retry(EncodedText(out), first, "retry of v.json: 2 enrollments")
    written = json.loads(out.getvalue())
    assert written["EnrollmentConfig"] == {"ExistingEnrollmentAction": "OVERWRITE"}
    assert written["SpeakerEnrollmentRequests"][0] == {
        "RequestId": "r1",
        "SpeakerId": "Ann Lee",
        "AudioSpecifications": [{"S3Uri": "calls/c1.wav", "ChannelId": 1}, {"S3Uri": "a.wav"}],
    }
    again = parse_manifest(out.getvalue(), "retry.json", DEFAULTS)
    assert not again.problems
    assert [e.model_dump(exclude={"source"}) for e in again.enrollments] == [
        e.model_dump(exclude={"source"}) for e in first
    ]


def test_rows_carry_request_and_speaker_ids() -> None:
    [e] = parsed(doc(req("r9", "Ann Lee"))).enrollments
    assert isinstance(e, Enrollment)
    record = _planned(e).failed(Step.PREFLIGHT, "x")
    assert (record.request_id, record.speaker_id) == ("r9", "Ann Lee")


# --- totality -------------------------------------------------------------------------------

VOICEID_FIELDS = [
    ("top", "Version"),
    ("top", "EnrollmentConfig"),
    ("top", "SpeakerEnrollmentRequests"),
    ("top", "Other"),
    ("request", "RequestId"),
    ("request", "SpeakerId"),
    ("request", "AudioSpecifications"),
    ("request", "Requestid"),
    ("audio", "S3Uri"),
    ("audio", "ChannelId"),
    ("audio", "Channel"),
    ("config", "ExistingEnrollmentAction"),
]


def _voiceid_doc() -> dict[str, Any]:
    return doc(
        req("r1", "Ann Lee", {"S3Uri": "calls/c1.wav", "ChannelId": 1}),
        req("r2", "bob"),
        EnrollmentConfig={"ExistingEnrollmentAction": "SKIP"},
    )


@PROPERTY
@given(field=st.sampled_from(VOICEID_FIELDS), value=JSON_VALUES, streamed=st.booleans())
def test_any_value_in_any_voice_id_field(
    field: tuple[str, str], value: Any, streamed: bool
) -> None:
    document = _voiceid_doc()
    where, name = field
    target = {
        "top": document,
        "request": document["SpeakerEnrollmentRequests"][0],
        "audio": document["SpeakerEnrollmentRequests"][0]["AudioSpecifications"][0],
        "config": document["EnrollmentConfig"],
    }[where]
    target[name] = value
    try:
        data = json.dumps(document, allow_nan=True).encode()
    except ValueError:
        return  # an integer too long to print: test_manifest_properties covers those bytes
    _check_total(data, "m.json")
    good = parse_manifest(data, "m.json", DEFAULTS).enrollments
    out = io.BytesIO()
    write_voiceid_retry(EncodedText(out), good, "retry")
    again = parse_manifest(out.getvalue(), "retry.json", DEFAULTS)
    assert [(e.key, e.request_id) for e in again.enrollments] == [
        (e.key, e.request_id) for e in good
    ]  # the Voice ID retry round-trips
    if streamed:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.json"
            path.write_bytes(data)
            result = collected(open_manifest(path, DEFAULTS, "m.json", stream_json_from=0))
            for problem in result.problems:
                str(problem).encode("utf-8")


@PROPERTY
@given(cut=st.integers(0, 300), insert=st.binary(max_size=8), drop=st.integers(0, 8))
def test_a_voice_id_manifest_with_bytes_cut_inserted_or_dropped(
    cut: int, insert: bytes, drop: int
) -> None:
    data = json.dumps(_voiceid_doc()).encode()
    cut = min(cut, len(data))
    _check_total(data[:cut] + insert + data[cut + drop :], "m.json")
