"""Large CSV manifests are read in two passes from disk (issue 18): the same enrollments,
problems and places as a file read whole, and a hash collision never joins two enrollments
nor makes a false duplicate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.manifests import ParsedManifest, collected, parse_manifest
from worker.manifest import keyindex
from worker.manifest.models import ManifestDefaults
from worker.manifest.read import open_manifest

DEFAULTS = ManifestDefaults(audio_root=Path("/srv/audio"), owner="acme", space="s")

CSVS = [
    "identity,audio\nann,a.wav\nbob,b.wav\nann,c.wav\n",
    "\ufeffIdentity,Audio,min_audios\r\nann,a.wav,2\r\nann,b.wav,\r\nbob,b.wav,1\r\n",
    "identity,audio\rann,a.wav\rbob,a.wav\r",  # old Mac line ends; an audio of two identities
    'identity,audio,notes\nann,a.wav,"two\nlines"\n"Cust 7",b.wav,x\nann,c.wav,\n',
    "identity,audio\nann,a.wav,extra\n,b.wav\nann,../c.wav\n\n,\nbob,\n",
    "identity,audio,model\nann,a.wav,phone/v1\nann,b.wav,digital/v1\nbob,c.wav,default/v1\n",
    "identity,audio,voiceprint\nann,a.wav,v1\nbob,b.wav,v1\nann,c.wav,v2\nann,d.wav,v1\n",
    "identity,audio\n",
    " \n\n",
    "identity;audio\nann;a.wav\n",
    'identity,audio\nann,"a.wav\n',
]


def _summary(parsed: ParsedManifest) -> Any:
    return (
        parsed.kind,
        parsed.total,
        parsed.csv_columns,
        [str(p) for p in parsed.problems],
        [str(p) for p in parsed.warnings],
        [(e.key, e.source, e.rows, e.audio_names, e.audio_places) for e in parsed.enrollments],
        [(r.source, r.rows) for r in parsed.rejected],
    )


def _streamed(tmp_path: Path, data: bytes) -> ParsedManifest:
    path = tmp_path / "b.csv"
    path.write_bytes(data)
    return collected(open_manifest(path, DEFAULTS, "b.csv", stream_csv_from=0))


@pytest.mark.parametrize("text", CSVS)
def test_two_passes_give_what_a_whole_read_gives(tmp_path: Path, text: str) -> None:
    data = text.encode()
    whole = parse_manifest(data, "b.csv", DEFAULTS)
    assert _summary(_streamed(tmp_path, data)) == _summary(whole)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"identity,audio\nann,a.wav\nbob,\xff.wav\n", "b.csv line 3: not UTF-8 text (byte 0xff"),
        (
            b"\xef\xbb\xbfidentity,audio\n\xc3",
            "b.csv line 2: not UTF-8 text (byte 0xc3 at offset 18)",
        ),
        (b"\xef\xbb\xbf \r\n", "b.csv: is empty"),
    ],
)
def test_a_file_that_is_not_text_is_refused_whole(
    tmp_path: Path, data: bytes, expected: str
) -> None:
    [problem] = _streamed(tmp_path, data).problems
    assert str(problem).startswith(expected)
    assert str(parse_manifest(data, "b.csv", DEFAULTS).problems[0]).startswith(expected)


def test_rows_of_one_enrollment_far_apart_are_read_again_in_first_line_order(
    tmp_path: Path,
) -> None:
    rows = "".join(f"id-{i % 3},f{i}.wav\n" for i in range(9))
    parsed = _streamed(tmp_path, ("identity,audio\n" + rows).encode())
    assert [(e.identity, e.source) for e in parsed.enrollments] == [
        ("id-0", "lines 2, 5, 8"),
        ("id-1", "lines 3, 6, 9"),
        ("id-2", "lines 4, 7, 10"),
    ]
    assert parsed.enrollments[0].audio_names == ("f0.wav", "f3.wav", "f6.wav")


@pytest.mark.parametrize("text", CSVS[:7])
def test_every_hash_colliding_changes_nothing(
    tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one hash for every key, only the rows read again can tell keys apart: still the
    right enrollments, and no duplicate or shared audio that is not really there."""
    data = text.encode()
    honest = _summary(parse_manifest(data, "b.csv", DEFAULTS))
    monkeypatch.setattr(keyindex, "key_hash", lambda key: 7)
    assert _summary(parse_manifest(data, "b.csv", DEFAULTS)) == honest
    assert _summary(_streamed(tmp_path, data)) == honest


def test_a_json_document_confirms_its_duplicates_too(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = (
        b'{"enrollments": [{"identity": "ann", "audios": ["a.wav"]},'
        b'{"identity": "bob", "audios": ["b.wav"]}, {"identity": "ann", "audios": ["c.wav"]}]}'
    )
    honest = _summary(parse_manifest(doc, "j.json", DEFAULTS))
    monkeypatch.setattr(keyindex, "key_hash", lambda key: 7)
    assert _summary(parse_manifest(doc, "j.json", DEFAULTS)) == honest
    assert [str(p) for p in parse_manifest(doc, "j.json", DEFAULTS).problems] == [
        'j.json enrollments[2]: identity "ann": voiceprint "main" is already listed at '
        "enrollments[0]; a voiceprint may appear once per job"
    ]
