"""A rejected enrollment keeps what was written (`given`), for its report, failures CSV and
retry entry: every value, the defaults the worker applied filled in."""

from __future__ import annotations

import json
from pathlib import Path

from tests.manifests import parse_manifest
from worker.manifest.given import plain
from worker.manifest.models import ManifestDefaults

DEFAULTS = ManifestDefaults(audio_root=Path("/audio"), owner="acme", space="onboarding")


def test_a_rejected_csv_row_keeps_its_values_checked_where_they_pass() -> None:
    text = "identity,audio,model,minAudios,channel\nCust 7,a.wav,phone/v9,2,1\nCust 7,b.wav,,,\n"
    [rejected] = parse_manifest(text.encode(), "m.csv", DEFAULTS).rejected
    assert rejected.row_lines == (2, 3)
    assert rejected.given == {
        "owner": "acme",
        "space": "onboarding",
        "identity": "Cust 7",
        "voiceprint": "main",
        "model": "phone/v9",
        "minAudios": 2,  # the cell "2", as the number it means
        "createIdentity": True,
        "existing": "conflict",
        "retire": "delete",
        "audios": [{"path": "a.wav", "channel": 1}, "b.wav"],
    }


def test_a_rejected_json_enrollment_keeps_what_json_cannot_say_again_as_text() -> None:
    doc = {"enrollments": [{"identity": "x", "audios": ["a.wav"], "minAudios": "many"}]}
    [rejected] = parse_manifest(json.dumps(doc).encode(), "m.json", DEFAULTS).rejected
    assert rejected.given["minAudios"] == "many" and rejected.given["audios"] == ["a.wav"]
    assert plain(float("nan")) == "NaN" and plain(10**5000).startswith("an integer of about")
    assert plain("\ud800") == "\\ud800"  # a lone surrogate, as its escape
    assert plain({"a": [[1]]}) == {"a": "[[1]]"}  # nested deeper: its text
