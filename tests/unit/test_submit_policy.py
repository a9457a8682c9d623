"""`enroller submit --existing` (issue 29): the policy written into the copy that is published,
in the manifest's own words, streamed; a file that already says otherwise is refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from worker.commands.submit_policy import PolicyRefused, write_policy

VOICEID = {"Version": "1.0", "SpeakerEnrollmentRequests": [{"RequestId": "r"}]}


def written(tmp_path: Path, content: Any, existing: str, name: str = "m.json") -> Any:
    path = tmp_path / name
    data = content if isinstance(content, bytes) else json.dumps(content).encode()
    path.write_bytes(data)
    result = write_policy(path, existing, name)
    after = path.read_bytes()
    if result is None:
        assert after == data  # nothing to write: the file is left as it was
    else:
        assert result == (hashlib.sha256(after).hexdigest(), len(after))
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left
    if name.endswith(".csv"):
        return after.decode()
    return json.loads(after.removeprefix(b"\xef\xbb\xbf"))


def test_a_json_job_gets_a_top_level_existing(tmp_path: Path) -> None:
    doc = written(tmp_path, {"enrollments": [{"identity": "a"}]}, "skip")
    assert doc == {"existing": "skip", "enrollments": [{"identity": "a"}]}


def test_a_voice_id_manifest_gets_its_enrollment_config(tmp_path: Path) -> None:
    doc = written(tmp_path, b"\xef\xbb\xbf \n" + json.dumps(VOICEID).encode(), "overwrite")
    assert doc["EnrollmentConfig"] == {"ExistingEnrollmentAction": "OVERWRITE"}
    assert doc["SpeakerEnrollmentRequests"] == VOICEID["SpeakerEnrollmentRequests"]


def test_the_same_policy_already_there_is_kept(tmp_path: Path) -> None:
    config = {"EnrollmentConfig": {"ExistingEnrollmentAction": "SKIP"}}
    assert (
        written(tmp_path, {**VOICEID, **config}, "skip")["EnrollmentConfig"]
        == config["EnrollmentConfig"]
    )
    assert written(tmp_path, {"existing": "Skip", "enrollments": []}, "skip")["existing"] == "Skip"


@pytest.mark.parametrize(
    ("content", "existing", "reason"),
    [
        ({"existing": "skip", "enrollments": []}, "overwrite", 'names existing "skip"'),
        (
            {**VOICEID, "EnrollmentConfig": {"ExistingEnrollmentAction": "SKIP"}},
            "overwrite",
            'says ExistingEnrollmentAction "SKIP"; --existing overwrite differs',
        ),
        (
            {**VOICEID, "EnrollmentConfig": {}},
            "skip",
            "has an EnrollmentConfig: write ExistingEnrollmentAction SKIP in it",
        ),
        (VOICEID, "conflict", "Voice ID's ExistingEnrollmentAction is SKIP or OVERWRITE"),
        ({"migrate": {"from": "a/v1", "to": "b/v1"}}, "skip", "a migration always overwrites"),
        ([1], "skip", "is not a JSON manifest"),
        (b"{nope", "skip", "not valid JSON"),
    ],
)
def test_what_is_refused(tmp_path: Path, content: Any, existing: str, reason: str) -> None:
    path = tmp_path / "m.json"
    data = content if isinstance(content, bytes) else json.dumps(content).encode()
    path.write_bytes(data)
    with pytest.raises(PolicyRefused) as refused:
        write_policy(path, existing, "m.json")
    assert reason in str(refused.value)
    assert path.read_bytes() == data


def test_a_csv_gets_an_existing_column_on_each_full_row(tmp_path: Path) -> None:
    source = (
        "\ufeffidentity,audio,alias\r\n"
        'a,a.wav,"Ann\nLee"\n'  # a quoted line break stays inside its cell
        "\r\n"  # a blank line stays blank
        "b,b.wav\r\n"  # a short row stays as it is: validation reports it
        ",,\r\n"  # an empty spreadsheet row stays empty
        "c,c.wav,\r\n"
    )
    text = written(tmp_path, source.encode(), "overwrite", name="m.csv")
    assert text == (
        "identity,audio,alias,existing\r\n"
        'a,a.wav,"Ann\nLee",overwrite\r\n'
        "\r\n"
        "b,b.wav\r\n"
        ",,\r\n"
        "c,c.wav,,overwrite\r\n"
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"identity,audio,Existing\r\na,a.wav,skip\r\n", "has an existing column"),
        (b"identity,audio\r\ncaf\xe9,a.wav\r\n", "cannot be read as CSV"),
        (b"", "is empty"),
    ],
)
def test_what_a_csv_refuses(tmp_path: Path, data: bytes, reason: str) -> None:
    path = tmp_path / ".m.csv.1234.tmp"  # the staged copy's name: the real name says CSV
    path.write_bytes(data)
    with pytest.raises(PolicyRefused, match=reason):
        write_policy(path, "skip", "m.csv")
    assert path.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_large_file_is_streamed(tmp_path: Path) -> None:
    requests = [{"RequestId": f"r{i}", "SpeakerId": "s"} for i in range(60_000)]
    doc = written(tmp_path, {"Version": "1.0", "SpeakerEnrollmentRequests": requests}, "skip")
    assert len(doc["SpeakerEnrollmentRequests"]) == 60_000
    assert doc["EnrollmentConfig"] == {"ExistingEnrollmentAction": "SKIP"}
