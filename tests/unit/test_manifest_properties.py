"""Property tests (issue 11): parsing is total over any bytes, and whatever it yields can be
written by every writer of user text (error files, journal rows, reports, CSVs, retry
manifests). `make fuzz` runs these with a large budget (HYPOTHESIS_PROFILE=fuzz)."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.manifests import parse_manifest
from worker.base.fsutil import dumps_json
from worker.base.streamout import EncodedText
from worker.base.text import encode_text
from worker.job.input import _planned, retry_entry
from worker.job.report import FailuresCsv
from worker.journal.records import Step
from worker.manifest.models import Enrollment, ManifestDefaults
from worker.manifest.retry import RetryEntry, write_retry_manifest

ROOT = Path("/srv/audio")
DEFAULTS = ManifestDefaults(audio_root=ROOT, owner="acme", space="onboarding", max_bytes=1 << 20)
NAMES = st.sampled_from(["m.json", "m.csv", "m.txt", "m"])
# Any code point, lone surrogates included (st.text leaves those out).
ANY_TEXT = st.lists(st.integers(0, 0x10FFFF), max_size=12).map(lambda cps: "".join(map(chr, cps)))
NASTY_NUMBERS = st.one_of(
    st.integers(),
    st.integers(4300, 5000).map(lambda digits: 10**digits),
    st.floats(allow_nan=True, allow_infinity=True),
)
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), NASTY_NUMBERS, ANY_TEXT),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(ANY_TEXT, inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "owner",
    "space",
    "identity",
    "voiceprint",
    "alias",
    "audios",
    "model",
    "minAudios",
    "createIdentity",
    "comment",
    "extra",
]
PROPERTY = settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)


def _valid_job() -> dict[str, Any]:
    return {
        "owner": "acme",
        "space": "onboarding",
        "model": "phone/v1",
        "enrollments": [
            {"identity": "cust-1", "alias": "Ada", "audios": ["cust-1/a.wav"]},
            {"identity": "cust-2", "audios": ["cust-2/a.wav", "cust-2/b.wav"], "minAudios": 2},
        ],
    }


def _dumps(doc: Any) -> bytes:
    """JSON as a careless exporter writes it: NaN allowed, surrogates as escapes."""
    try:
        return json.dumps(doc, allow_nan=True).encode()
    except ValueError:  # an integer too long to print: write it by hand
        return b'{"enrollments": [{"identity": "x", "minAudios": ' + b"9" * 5000 + b"}]}"


def retry_manifest_bytes(
    enrollments: Sequence[RetryEntry], root: Path, comment: str | None = None
) -> bytes:
    """The retry manifest as the job writes it (`JobInput.write_outputs`), in bytes."""
    out = io.BytesIO()
    write_retry_manifest(EncodedText(out), enrollments, root, comment)
    return out.getvalue()


def _check_total(data: bytes, name: str) -> None:
    """Parse `data` and push everything it yields through the writers; nothing may raise."""
    parsed = parse_manifest(data, name, DEFAULTS)
    for problem in parsed.problems:
        str(problem).encode("utf-8")  # strict: every problem text is real UTF-8
        dumps_json(problem.model_dump(mode="json"))
    columns = parsed.csv_columns
    csv_out = FailuresCsv(io.BytesIO(), columns, audio_root=ROOT)
    entries = []
    for item in [*parsed.enrollments, *parsed.rejected]:
        planned = _planned(item)
        record = planned.failed(Step.PREFLIGHT, planned.problem_text() or "x")
        record.model_dump_json()  # the journal's encoding, strict
        csv_out.add(record, item)
        entries.append(retry_entry(item, record, ROOT))
    csv_out.flush()
    good = [e for e in parsed.enrollments if isinstance(e, Enrollment)]
    again = parse_manifest(retry_manifest_bytes(good, ROOT), "retry.json", DEFAULTS)
    assert [e.key for e in again.enrollments] == [e.key for e in good]  # the retry round-trips
    # Every enrollment, rejected ones as written, makes a retry file the worker reads again:
    # each one an enrollment of it (to fix where it is bad), none spoiling the whole file.
    if entries:  # a job writes no retry file without an enrollment to retry
        everything = parse_manifest(retry_manifest_bytes(entries, ROOT), "retry.json", DEFAULTS)
        assert not everything.file_problems and everything.total == len(entries)
        # (a rejected one may pass now: an unknown key is not written back)
        assert {e.key for e in good} <= {e.key for e in everything.enrollments}


@PROPERTY
@given(data=st.binary(max_size=400), name=NAMES)
def test_any_bytes_parse_to_problems_and_write_everywhere(data: bytes, name: str) -> None:
    _check_total(data, name)


@PROPERTY
@given(
    path=st.lists(st.sampled_from([0, 1]), min_size=0, max_size=2),
    field=st.sampled_from(FIELDS),
    value=JSON_VALUES,
)
def test_a_valid_job_with_any_value_in_any_field(path: list[int], field: str, value: Any) -> None:
    doc = _valid_job()
    target: dict[str, Any] = doc
    for index in path[:1]:
        target = doc["enrollments"][index]
    target[field] = value
    _check_total(_dumps(doc), "m.json")


@PROPERTY
@given(
    cut=st.integers(0, 400),
    insert=st.binary(max_size=8),
    drop=st.integers(0, 8),
    name=st.sampled_from(["m.json", "m.csv"]),
)
def test_a_valid_manifest_with_bytes_cut_inserted_or_dropped(
    cut: int, insert: bytes, drop: int, name: str
) -> None:
    if name.endswith(".json"):
        data = json.dumps(_valid_job()).encode()
    else:
        data = b"identity,audio,alias,minAudios\r\ncust-1,cust-1/a.wav,Ada,1\r\ncust-2,b.wav,,1\r\n"
    cut = min(cut, len(data))
    _check_total(data[:cut] + insert + data[cut + drop :], name)


@PROPERTY
@given(cells=st.lists(st.lists(ANY_TEXT, max_size=6), max_size=6))
def test_any_csv_cells(cells: list[list[str]]) -> None:
    text = "\r\n".join(",".join(json.dumps(c) for c in row) for row in cells)
    _check_total(encode_text(text), "m.csv")


def test_the_inputs_of_issue_11_each_become_a_problem() -> None:
    cases = {
        "empty.csv": b",,,\r\n",
        "quotes.csv": b'""',
        "bom.csv": b"\xef\xbb\xbf",
        "deep.json": b"[" * 100_000,
        "huge.json": b'{"identity": "a", "audios": ["a.wav"], "minAudios": ' + b"9" * 5000 + b"}",
        "latin1.csv": b"identity,audio\ncaf\xe9,a.wav\n",
        "surrogate.json": b'{"identity": "\\ud800", "audios": ["a.wav"]}',
        "surrogate-audio.json": b'{"identity": "a", "audios": ["\\udc80.wav"]}',
        "surrogate-alias.json": b'{"identity": "a", "alias": "\\udfff", "audios": ["a.wav"]}',
    }
    for name, data in cases.items():
        problems = parse_manifest(data, name, DEFAULTS).problems
        assert problems, name
        for problem in problems:
            assert problem.file == name and problem.reason, problem
            str(problem).encode("utf-8")
    [alias] = parse_manifest(cases["surrogate-alias.json"], "s.json", DEFAULTS).problems
    assert alias.field == "alias" and "not valid Unicode" in alias.reason
