"""Large JSON manifests are read as a stream (issue 18): the same enrollments and problems as
a whole parse, top-level defaults wherever they stand, and the guards yajl lacks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.manifests import collected, parse_manifest
from worker.manifest.models import ManifestDefaults
from worker.manifest.read import open_manifest

ROOT = Path("/srv/audio")
DEFAULTS = ManifestDefaults(audio_root=ROOT)


def _both(tmp_path: Path, data: bytes) -> tuple[Any, Any]:
    path = tmp_path / "m.json"
    path.write_bytes(data)
    return collected(open_manifest(path, DEFAULTS, "m.json", stream_json_from=0)), parse_manifest(
        data, "m.json", DEFAULTS
    )


JOBS = [
    {"owner": "acme", "space": "s", "enrollments": [{"identity": "a", "audios": ["a.wav"]}]},
    # the defaults after the enrollments: a stream must still apply them to every enrollment
    {"enrollments": [{"identity": "a", "audios": ["a.wav"]}], "owner": "acme", "space": "s"},
    {
        "owner": "acme",
        "space": "s",
        "model": "digital/v1",
        "minAudios": 2,
        "enrollments": [
            {"identity": "a", "audios": ["a.wav", "b.wav"]},
            {"identity": "a", "audios": ["c.wav", "d.wav"]},  # duplicate voiceprint
            {"identity": "b", "audios": ["a.wav", "e.wav"]},  # audio of another identity
            {"identity": "Bad Handle", "audios": ["f.wav", "g.wav"]},
            7,
            {"identity": "c", "audios": ["h.wav", "i.wav"], "extra": 1},
        ],
        "comment": {"nested": ["ignored"]},
    },
    {"owner": "acme", "space": "s", "enrollments": {}},
    {"owner": "acme", "space": "s", "enrollments": []},
    {"owner": "acme", "space": "s", "unknown": 1, "enrollments": [{"identity": "a"}]},
]


@pytest.mark.parametrize("doc", JOBS)
def test_a_stream_gives_what_a_whole_parse_gives(tmp_path: Path, doc: dict[str, Any]) -> None:
    streamed, whole = _both(tmp_path, json.dumps(doc).encode())
    assert [e.key for e in streamed.enrollments] == [e.key for e in whole.enrollments]
    assert [str(p) for p in streamed.problems] == [str(p) for p in whole.problems]


def test_the_single_enrollment_shorthand_still_works(tmp_path: Path) -> None:
    doc = {"owner": "acme", "space": "s", "identity": "a", "audios": ["a.wav"]}
    streamed, _ = _both(tmp_path, json.dumps(doc).encode())
    assert [e.key for e in streamed.enrollments] == ["acme/s/a/main"]


def test_a_default_given_as_a_list_spoils_the_file(tmp_path: Path) -> None:
    doc = {"owner": [], "space": "s", "enrollments": [{"identity": "a", "audios": ["a.wav"]}]}
    streamed, _ = _both(tmp_path, json.dumps(doc).encode())
    [problem] = streamed.file_problems
    assert (problem.field, problem.reason) == ("owner", "must be text")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xef\xbb\xbf" + json.dumps(JOBS[0]).encode(), None),
        (b'{"enrollments": [' + b"[" * 200, "nested deeper than 64"),
        (b'{"owner": "acme", "space": "s", "enrollments": [{"identity": "\\ud800"}]}', "lone"),
        (b'{"owner": "acme", "enrollments": [{"identity": "a", "minAudios": NaN}]}', "not valid"),
        (b'{"enrollments": [{"identity": "a"', "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"owner": "acme", "enrollments": [{"alias": "caf\xe9"}]}', "not valid JSON"),
    ],
)
def test_the_stream_guards(tmp_path: Path, data: bytes, reason: str | None) -> None:
    path = tmp_path / "m.json"
    path.write_bytes(data)
    defaults = DEFAULTS.model_copy(update={"owner": "acme", "space": "s"})
    parsed = open_manifest(path, defaults, stream_json_from=0)
    if reason is None:
        assert parsed.file_problems == [] and parsed.total == 1
    else:
        [problem] = parsed.file_problems
        assert reason in problem.reason, problem
