"""Manifest parsing: pure functions over text, no files. One bad enrollment never sinks others."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.manifests import ParsedManifest, parse_manifest
from worker.base.streamout import EncodedText
from worker.manifest.models import Enrollment, ManifestDefaults, Problem
from worker.manifest.retry import write_retry_manifest
from worker.manifest.values import handle_problem

ROOT = Path("/data/audio")
DEFAULTS = ManifestDefaults(audio_root=ROOT, owner="acme", space="calls")


def parse(name: str, content: str | bytes, defaults: ManifestDefaults = DEFAULTS) -> ParsedManifest:
    data = content.encode() if isinstance(content, str) else content
    return parse_manifest(data, name, defaults)


def job(*enrollments: Any, **top: Any) -> str:
    return json.dumps({**top, "enrollments": list(enrollments)})


def lines(parsed: ParsedManifest) -> list[str]:
    return [str(p) for p in parsed.problems]


def retry_manifest_bytes(
    enrollments: list[Enrollment], root: Path, comment: str | None = None
) -> bytes:
    """The retry manifest as the job writes it (`JobInput.write_outputs`), in bytes."""
    out = io.BytesIO()
    write_retry_manifest(EncodedText(out), enrollments, root, comment)
    return out.getvalue()


# --- formats and defaults ----------------------------------------------------------------------


def test_job_applies_every_default() -> None:
    parsed = parse("job.json", job({"identity": "ann", "audios": ["ann/1.wav"]}))
    assert parsed.ok and parsed.kind == "job"
    (e,) = parsed.enrollments
    assert e == Enrollment(
        owner="acme",
        space="calls",
        identity="ann",
        voiceprint="main",
        model="phone/v1",
        min_audios=1,
        alias=None,
        create_identity=True,
        audios=(ROOT / "ann/1.wav",),
        audio_names=("ann/1.wav",),
        audio_fields=("audios[0]",),
        audio_places=("enrollments[0]",),
        source="enrollments[0]",
        position=0,
    )
    assert e.key == "acme/calls/ann/main"


def test_job_level_values_are_defaults_and_enrollments_override_them() -> None:
    parsed = parse(
        "job.json",
        job(
            {"identity": "ann", "audios": ["a.wav", "b.wav"]},
            {
                "identity": "bob",
                "audios": ["c.wav"],
                "minAudios": 1,
                "model": "phone/v1",
                "owner": "other",
                "createIdentity": False,
                "alias": "Bob B.",
                "voiceprint": "second",
            },
            owner="org",
            space="s1",
            model="digital/v1",
            minAudios=2,
        ),
    )
    assert parsed.ok, lines(parsed)
    ann, bob = parsed.enrollments
    assert (ann.owner, ann.space, ann.model, ann.min_audios) == ("org", "s1", "digital/v1", 2)
    assert (bob.owner, bob.space, bob.model, bob.min_audios) == ("other", "s1", "phone/v1", 1)
    assert (bob.create_identity, bob.alias, bob.voiceprint) == (False, "Bob B.", "second")


@pytest.mark.parametrize(
    "model", ["digital/v1", {"handle": "digital", "version": "v1"}], ids=["string", "object"]
)
def test_model_in_both_vendor_forms_is_normalised(model: object) -> None:
    parsed = parse("one.json", json.dumps({"identity": "ann", "audios": ["a.wav"], "model": model}))
    assert parsed.kind == "single"
    assert parsed.enrollments[0].model == "digital/v1"
    assert parsed.enrollments[0].source == "enrollment"


def test_settings_defaults_fill_owner_and_space_and_their_absence_is_reported() -> None:
    bare = ManifestDefaults(audio_root=ROOT)
    parsed = parse("one.json", '{"identity": "ann", "audios": ["a.wav"]}', bare)
    assert lines(parsed) == [
        "one.json: owner: is missing; name it in the manifest or set ENROLLER_OWNER",
        "one.json: space: is missing; name it in the manifest or set ENROLLER_SPACE",
    ]


def test_csv_groups_rows_into_enrollments_and_keeps_the_original_rows() -> None:
    text = (
        "identity,audio,voiceprint,minAudios,notes\n"
        "ann,ann/1.wav,,2,first\n"
        "bob,bob/1.wav,,,\n"
        "ann,ann/2.wav,main,,second\n"
        "ann,ann/3.wav,other,,\n"
    )
    parsed = parse("batch.csv", text)
    assert parsed.ok, lines(parsed)
    assert parsed.csv_columns == ["identity", "audio", "voiceprint", "minAudios", "notes"]
    ann, bob, other = parsed.enrollments
    assert ann.source == "lines 2, 4" and ann.min_audios == 2
    assert ann.audio_names == ("ann/1.wav", "ann/2.wav")
    assert ann.audio_places == ("line 2", "line 4")
    assert [r["notes"] for r in ann.rows] == ["first", "second"]
    assert (bob.source, other.source, other.voiceprint) == ("line 3", "line 5", "other")


def test_csv_columns_match_loosely_and_tolerate_a_bom() -> None:
    text = "\ufeffIdentity, Audio ,min_audios,CREATE_IDENTITY\nann,a.wav,1,no\n"
    parsed = parse("batch.csv", text)
    assert parsed.ok, lines(parsed)
    assert parsed.enrollments[0].create_identity is False


def test_csv_a_quoted_multiline_cell_keeps_line_numbers_right() -> None:
    text = 'identity,audio,alias\nann,a.wav,"two\nlines"\nCust 7,b.wav,\n'
    assert lines(parse("b.csv", text)) == [
        'b.csv line 4: identity "Cust 7": handles are lowercase letters, digits and hyphens'
    ]


# --- per-enrollment problems (table) -----------------------------------------------------------

E = {"identity": "ann", "audios": ["a.wav"]}


@pytest.mark.parametrize(
    ("enrollment", "expected"),
    [
        (
            {**E, "identity": "Cust 7"},
            'identity "Cust 7": handles are lowercase letters, digits and hyphens',
        ),
        ({**E, "identity": "a--b"}, 'identity "a--b": hyphens may only join'),
        ({**E, "identity": "a" * 51}, "is 51 characters; handles are at most 50"),
        ({**E, "identity": 7}, "identity 7: must be text"),
        ({"audios": ["a.wav"]}, "identity: is missing"),
        ({**E, "voiceprint": "Main"}, 'voiceprint "Main": handles are'),
        ({**E, "alias": ""}, 'alias "": must not be empty'),
        ({**E, "alias": "x" * 101}, "is 101 characters; aliases are 1–100 characters"),
        ({**E, "minAudios": 0}, "minAudios 0: must be between 1 and 20"),
        ({**E, "minAudios": 21}, "minAudios 21: must be between 1 and 20"),
        ({**E, "minAudios": "two"}, 'minAudios "two": must be a whole number'),
        ({**E, "minAudios": True}, "minAudios true: must be a whole number"),
        ({**E, "minAudios": 2}, "audios: 1 file listed but minAudios is 2"),
        ({**E, "model": "phone"}, 'model "phone": must be "handle/version"'),
        ({**E, "model": {"handle": "phone"}}, 'model {"handle": "phone"}: must be'),
        (
            {**E, "model": "studio/v9"},
            'model "studio/v9": unknown model; known models are default/v1, digital/v1, phone/v1',
        ),
        ({**E, "createIdentity": "maybe"}, 'createIdentity "maybe": must be true or false'),
        ({"identity": "ann"}, "audios: none listed"),
        ({"identity": "ann", "audios": []}, "audios: none listed"),
        ({"identity": "ann", "audios": "a.wav"}, 'audios "a.wav": must be a list of paths'),
        ({"identity": "ann", "audios": [""]}, 'audios[0] "": must not be empty'),
        (
            {"identity": "ann", "audios": [3]},
            "audios[0] 3: must be a path (text), or an object with path and channel",
        ),
        ({"identity": "ann", "audios": ["../x.wav"]}, "leads outside the audio root"),
        ({"identity": "ann", "audios": ["a/../../x.wav"]}, "leads outside the audio root"),
        ({"identity": "ann", "audios": ["/etc/x.wav"]}, '"/etc/x.wav": is outside the audio root'),
        ({"identity": "ann", "audios": ["/data/audio-2/x.wav"]}, "is outside the audio root"),
        ({"identity": "ann", "audios": ["."]}, "is the audio root itself"),
        (
            {"identity": "ann", "audios": ["a.wav", "./x/../a.wav"]},
            'audios[1] "./x/../a.wav": listed twice (also audios[0])',
        ),
        ({**E, "colour": "red"}, "colour: unknown field; known fields are alias, audios"),
    ],
)
def test_a_bad_enrollment_is_rejected_with_one_clear_problem_and_the_good_one_survives(
    enrollment: dict[str, Any], expected: str
) -> None:
    good = {"identity": "zed", "audios": ["z.wav"]}
    parsed = parse("job.json", job(good, enrollment))
    assert [e.identity for e in parsed.enrollments] == ["zed"]
    assert len(parsed.problems) == 1, lines(parsed)
    assert str(parsed.problems[0]).startswith("job.json enrollments[1]: ")
    assert expected in str(parsed.problems[0])
    (rejected,) = parsed.rejected
    assert rejected.source == "enrollments[1]" and rejected.position == 1


def test_paths_inside_the_root_are_accepted_absolute_or_with_dots() -> None:
    parsed = parse(
        "j.json", job({"identity": "ann", "audios": ["/data/audio/x/a.wav", "x/../b.wav"]})
    )
    assert parsed.ok, lines(parsed)
    assert parsed.enrollments[0].audios == (ROOT / "x/a.wav", ROOT / "b.wav")
    assert parsed.enrollments[0].audio_names == ("x/a.wav", "b.wav")


def test_an_enrollment_that_is_not_an_object_gets_one_problem() -> None:
    parsed = parse("j.json", job(5))
    assert lines(parsed) == ["j.json enrollments[0]: 5: must be a JSON object"]


def test_every_problem_of_one_enrollment_is_reported() -> None:
    parsed = parse("j.json", job({"identity": "A", "minAudios": 0, "audios": ["../a"]}))
    assert len(parsed.problems) == 3


# --- across enrollments ------------------------------------------------------------------------


def test_a_duplicate_identity_voiceprint_pair_rejects_the_later_one() -> None:
    parsed = parse(
        "j.json",
        job(
            {"identity": "ann", "audios": ["a.wav"]},
            {"identity": "ann", "voiceprint": "other", "audios": ["b.wav"]},
            {"identity": "ann", "audios": ["c.wav"]},
        ),
    )
    assert [e.source for e in parsed.enrollments] == ["enrollments[0]", "enrollments[1]"]
    assert lines(parsed) == [
        'j.json enrollments[2]: identity "ann": voiceprint "main" is already listed at '
        "enrollments[0]; a voiceprint may appear once per job"
    ]


def test_one_audio_for_two_identities_is_refused_but_two_voiceprints_may_share_it() -> None:
    parsed = parse(
        "j.json",
        job(
            {"identity": "ann", "audios": ["a.wav"]},
            {"identity": "ann", "voiceprint": "digital", "audios": ["a.wav"]},
            {"identity": "bob", "audios": ["./a.wav"]},
        ),
    )
    assert len(parsed.enrollments) == 2
    assert lines(parsed) == [
        'j.json enrollments[2]: audios "a.wav": also listed for another identity at '
        "enrollments[0]; an audio can belong to one identity only"
    ]


def test_csv_rows_of_one_enrollment_must_agree() -> None:
    text = "identity,audio,model,minAudios\nann,a.wav,phone/v1,1\nann,b.wav,digital/v1,\n"
    parsed = parse("b.csv", text)
    assert parsed.enrollments == []
    assert lines(parsed) == [
        'b.csv lines 2-3: model: rows of one enrollment disagree: "phone/v1" on line 2, '
        '"digital/v1" on line 3'
    ]


def test_csv_one_audio_twice_in_an_enrollment() -> None:
    parsed = parse("b.csv", "identity,audio\nann,a.wav\nbob,b.wav\nann,a.wav\n")
    assert [e.identity for e in parsed.enrollments] == ["bob"]
    assert lines(parsed) == ['b.csv line 4: audio "a.wav": listed twice (also line 2)']


def test_csv_row_problems_point_at_their_line() -> None:
    text = "identity,audio\nann,a.wav\nCust 7,b.wav\n,c.wav\ndan,d.wav,extra\neve,../e.wav\nfay,\n"
    parsed = parse("batch.csv", text)
    assert [e.identity for e in parsed.enrollments] == ["ann"]
    assert lines(parsed) == [
        'batch.csv line 3: identity "Cust 7": handles are lowercase letters, digits and hyphens',
        "batch.csv line 4: identity: is missing",
        "batch.csv line 5: has 3 cells but the header has 2; quote cells that contain commas",
        'batch.csv line 6: audio "../e.wav": leads outside the audio root '
        "(/data/e.wav is not under /data/audio: ENROLLER_AUDIO_ROOT)",
        'batch.csv line 7: audio "": must not be empty',
    ]


# --- whole-file problems -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("e.json", "", "e.json: is empty"),
        ("e.csv", " \n\n", "e.csv: is empty"),
        (
            "b.json",
            '{"identity": "ann",\n  "audios": [}',
            "b.json line 2 column 14: not valid JSON: Expecting value",
        ),
        (
            "b.json",
            b'{"identity": "\xff"}',
            "b.json line 1: not UTF-8 text (byte 0xff at offset 14)",
        ),
        ("l.json", "[1, 2]", "l.json: must be a JSON object"),
        ("n.json", '{"enrollments": []}', "n.json: enrollments: no enrollments"),
        ("n.json", '{"enrollments": {}}', "n.json: enrollments: must be a list of enrollments"),
        ("t.json", job(E, owner="Big Org"), 't.json: owner "Big Org": handles are'),
        ("t.json", job(E, minAudios=99), "t.json: minAudios 99: must be between 1 and 20"),
        ("t.json", job(E, model="x/v1"), 't.json: model "x/v1": unknown model'),
        ("t.json", job(E, colour=1), "t.json: colour: unknown field"),
        ("h.csv", "identity,audio\n", "h.csv: no enrollments (the file has only a header row)"),
        ("m.csv", "identity,file\nann,a.wav\n", 'm.csv line 1: missing column "audio"'),
        (
            "w.csv",
            "Kunde;Datei\nann;a.wav\n",
            'w.csv line 1: missing columns "identity", "audio"; the header has "Kunde;Datei" '
            "(required: identity, audio;",
        ),
        ("d.csv", "identity,audio,Audio\n", "d.csv line 1: Audio: column appears twice"),
        (
            "z.csv",
            "identity,audio\nann," + "x" * 200_000 + "\n",
            "z.csv line 2: not valid CSV: field larger than field limit",
        ),
    ],
)
def test_whole_file_problems(name: str, content: str | bytes, expected: str) -> None:
    parsed = parse(name, content)
    assert parsed.enrollments == [] and parsed.rejected == []
    assert len(parsed.file_problems) == 1, lines(parsed)
    assert expected in str(parsed.file_problems[0])


def test_a_manifest_over_the_size_limit_is_refused_before_parsing() -> None:
    small = ManifestDefaults(audio_root=ROOT, owner="o", space="s", max_bytes=10)
    parsed = parse("big.json", job(E), small)
    assert "manifest limit (ENROLLER_MAX_MANIFEST_BYTES)" in lines(parsed)[0]


def test_a_deprecated_model_is_a_warning_given_once_per_file() -> None:
    parsed = parse(
        "j.json",
        job(
            {"identity": "ann", "audios": ["a.wav"]},
            {"identity": "bob", "audios": ["b.wav"]},
            model="default/v1",
        ),
    )
    assert parsed.ok and len(parsed.enrollments) == 2
    assert [str(w) for w in parsed.warnings] == [
        'j.json enrollments[0]: warning: model "default/v1": default/v1 is deprecated; use phone/v1'
    ]


# --- small rules and rendering -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("a", True),
        ("ann-lee-2", True),
        ("7", True),
        ("a" * 50, True),
        ("", False),
        ("-a", False),
        ("a-", False),
        ("a--b", False),
        ("A", False),
        ("a_b", False),
        ("a b", False),
        ("é", False),
        ("a" * 51, False),
    ],
)
def test_handle_rule(value: str, ok: bool) -> None:
    assert (handle_problem(value) is None) is ok


def test_problem_text_matches_the_documented_shape() -> None:
    p = Problem(
        file="batch.csv",
        place="line 14",
        field="identity",
        value='"Cust 7"',
        reason="handles are lowercase letters, digits and hyphens",
    )
    assert (
        str(p)
        == 'batch.csv line 14: identity "Cust 7": handles are lowercase letters, digits and hyphens'
    )
    assert str(Problem(file="x.json", reason="is empty")) == "x.json: is empty"


# --- retry manifest ----------------------------------------------------------------------------


def test_retry_manifest_round_trips_with_every_value_explicit() -> None:
    source = job(
        {
            "identity": "ann",
            "audios": ["a/1.wav", "/data/audio/a/2.wav"],
            "alias": "Ann",
            "minAudios": 2,
        },
        {"identity": "bob", "audios": ["b.wav"], "createIdentity": False},
        model="digital/v1",
    )
    parsed = parse("j.json", source)
    data = retry_manifest_bytes(parsed.enrollments, ROOT, comment="retry of j")
    doc = json.loads(data)
    assert doc["comment"] == "retry of j"
    assert doc["enrollments"][0] == {
        "owner": "acme",
        "space": "calls",
        "identity": "ann",
        "voiceprint": "main",
        "model": "digital/v1",
        "minAudios": 2,
        "alias": "Ann",
        "createIdentity": True,
        "existing": "conflict",
        "retire": "delete",
        "audios": ["a/1.wav", "a/2.wav"],
    }
    # Read back under other defaults, it still means exactly the same enrollments.
    other = ManifestDefaults(audio_root=ROOT, owner="zzz", space="yyy", model="default/v1")
    again = parse("j.retry.json", data, other)
    assert again.ok
    strip = {"source", "position", "audio_fields", "audio_places"}
    assert [e.model_dump(exclude=strip) for e in again.enrollments] == [
        e.model_dump(exclude=strip) for e in parsed.enrollments
    ]


def test_retry_manifest_of_a_subset_and_of_nothing() -> None:
    parsed = parse(
        "j.json", job({"identity": "ann", "audios": ["a"]}, {"identity": "bob", "audios": ["b"]})
    )
    doc = json.loads(retry_manifest_bytes(parsed.enrollments[1:], ROOT))
    assert [e["identity"] for e in doc["enrollments"]] == ["bob"]
    assert json.loads(retry_manifest_bytes([], ROOT)) == {"enrollments": []}


@pytest.mark.parametrize("delimiter", [";", "\t", ","])
def test_a_semicolon_or_tab_separated_export_is_read(delimiter: str) -> None:
    """European Excel writes `;` (its list separator), "Unicode text" writes tabs."""
    d = delimiter
    text = f'identity{d}audio{d}alias\nann{d}a.wav{d}"Ann{d} A."\n'  # quoted: holds a delimiter
    parsed = parse("export.csv", text)
    assert lines(parsed) == []
    [enrollment] = parsed.enrollments
    assert (enrollment.identity, enrollment.audio_names, enrollment.alias) == (
        "ann",
        ("a.wav",),
        f"Ann{d} A.",
    )
