"""`existing` and `retire` (issue 28) as a manifest gives them: per file, per enrollment, per CSV
column, the settings' default otherwise; a wrong word is that enrollment's located problem."""

from __future__ import annotations

import json
from pathlib import Path

from tests.manifests import ParsedManifest, parse_manifest
from worker.manifest.models import ManifestDefaults

ROOT = Path("/audio")
DEFAULTS = ManifestDefaults(audio_root=ROOT, owner="acme", space="calls")


def parse(name: str, text: str, defaults: ManifestDefaults = DEFAULTS) -> ParsedManifest:
    return parse_manifest(text.encode(), name, defaults)


def test_json_job_default_and_per_enrollment_override() -> None:
    doc = {
        "existing": "skip",
        "retire": "keep",
        "enrollments": [
            {"identity": "ann", "audios": ["a.wav"]},
            {"identity": "bob", "audios": ["b.wav"], "existing": "Overwrite", "retire": "delete"},
        ],
    }
    parsed = parse("j.json", json.dumps(doc), DEFAULTS)
    assert parsed.ok, parsed.problems
    assert [(e.existing, e.retire) for e in parsed.enrollments] == [
        ("skip", "keep"),
        ("overwrite", "delete"),
    ]


def test_csv_columns_and_the_settings_default() -> None:
    csv = "identity,audio,existing\nann,a.wav,skip\nbob,b.wav,\n"
    defaults = DEFAULTS.model_copy(update={"existing": "overwrite"})
    parsed = parse("b.csv", csv, defaults)
    by_identity = {e.identity: e.existing for e in parsed.enrollments}
    assert by_identity["ann"] == "skip"
    assert parse("c.csv", "identity,audio\ncy,c.wav\n", defaults).enrollments[0].existing == (
        "overwrite"
    )


def test_a_wrong_word_is_a_located_problem_of_that_enrollment() -> None:
    doc = {"enrollments": [{"identity": "ann", "audios": ["a.wav"], "existing": "replace"}]}
    parsed = parse("j.json", json.dumps(doc), DEFAULTS)
    [problem] = parsed.problems
    assert str(problem) == (
        'j.json enrollments[0]: existing "replace": must be one of conflict, skip, overwrite'
    )
    bad_default = parse("k.json", json.dumps({**doc, "retire": "archive"}), DEFAULTS)
    assert any("retire" in str(p) for p in bad_default.problems)
