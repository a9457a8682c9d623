"""`enroller submit`: concurrent submitters never overwrite each other, a bad manifest is refused.

Submitters are real processes (`python -m worker submit`), started together; the worker then
claims what they published, and its reports carry the job ids that submit printed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.audiogen import write_audio
from tests.emulator_harness import EmulatorHandle
from tests.support import make_settings, run_once
from worker.cli import main
from worker.commands.submit import candidate_names
from worker.queue.rules import job_id_for

SUBMITTERS = 6
_LINE = re.compile(r"^(?P<src>\S+): submitted as (?P<path>\S+): job (?P<job>\S+)$")


def _env(queue: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENROLLER_")}
    env.update(ENROLLER_QUEUE_DIR=str(queue), ENROLLER_OWNER="demo", ENROLLER_SPACE="main")
    return env


@pytest.fixture
def queue(tmp_path: Path) -> Path:
    root = tmp_path / "queue"
    for i in range(SUBMITTERS):
        write_audio(root / "audio" / f"cust-{i}.wav", 5.0, 0.2, 8000)
    return root


def _submit_concurrently(tmp_path: Path, queue: Path) -> dict[str, str]:
    """Start one `submit` process per export, all of a file named tonight.csv; source → job."""
    sources = []
    for i in range(SUBMITTERS):
        src = tmp_path / f"export-{i}" / "tonight.csv"  # every submitter drops "tonight.csv"
        src.parent.mkdir()
        src.write_text(f"identity,audio\ncust-{i},cust-{i}.wav\n")
        sources.append(src)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "worker", "submit", str(src)],
            env=_env(queue),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for src in sources
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * SUBMITTERS, outputs

    inbox = queue / "inbox"
    names = sorted(os.listdir(inbox))
    assert names == sorted(candidate_names("tonight.csv")[:SUBMITTERS])  # no temp file left
    printed: dict[str, str] = {}
    for out, _ in outputs:
        m = _LINE.match(out.strip())
        assert m is not None, out
        published = Path(m["path"])
        # What was published is exactly what that submitter read, and its id is the queue's.
        assert published.read_bytes() == Path(m["src"]).read_bytes()
        digest = hashlib.sha256(published.read_bytes()).hexdigest()
        assert m["job"] == job_id_for(published.name, digest)
        printed[m["src"]] = m["job"]
    assert len(set(printed.values())) == SUBMITTERS
    return printed


async def test_concurrent_submitters_of_one_name_all_land(
    tmp_path: Path, queue: Path, emulator: EmulatorHandle
) -> None:
    printed = _submit_concurrently(tmp_path, queue)

    settings = make_settings(queue, emulator.base_url)
    assert await run_once(settings) == 0
    reports = {
        p.name.removesuffix(".report.json") for p in (queue / "reports").glob("*.report.json")
    }
    assert reports == set(printed.values())
    enrolled = set()
    for job in printed.values():
        report = json.loads((queue / "reports" / f"{job}.report.json").read_text())
        enrolled.update(r["identity"] for r in report["enrollments"] if r["outcome"] == "enrolled")
    assert enrolled == {f"cust-{i}" for i in range(SUBMITTERS)}


def test_a_manifest_failing_validation_is_not_submitted(
    tmp_path: Path, queue: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.csv"
    good.write_text("identity,audio\ncust-0,cust-0.wav\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("identity,audio\ncust-1,cust-1.wav\ncust-9,cust-9/never-recorded.wav\n")
    args = ["submit", str(good), str(bad), "--queue-dir", str(queue)]
    args += ["--owner", "demo", "--space", "main"]

    assert main(args) == 1
    out = capsys.readouterr().out
    assert f'{bad} line 3: audio "cust-9/never-recorded.wav": does not exist' in out
    assert "nothing submitted: 1 problem(s)" in out
    # Not the bad file, not the good one beside it, and no temporary copy left behind.
    assert os.listdir(queue / "inbox") == []

    assert main([*args, "--no-validate"]) == 0
    assert sorted(os.listdir(queue / "inbox")) == ["bad.csv", "good.csv"]


def test_submit_again_is_not_queued_twice(
    tmp_path: Path, queue: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "nightly.json"
    src.write_text(json.dumps({"identity": "cust-0", "audios": ["cust-0.wav"]}))
    args = ["submit", str(src), "--queue-dir", str(queue), "--owner", "demo", "--space", "main"]
    assert main(args) == 0
    assert main([*args, "--json"]) == 0
    out = capsys.readouterr().out
    doc = json.loads(out[out.index("{") :])
    [item] = doc["submitted"]
    assert item["already_queued"] is True and item["inbox_name"] == "nightly.json"
    assert os.listdir(queue / "inbox") == ["nightly.json"]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("export.xlsx", "is not a manifest name"),
        (".hidden.csv", "is not a manifest name"),
        ("missing.csv", "does not exist"),
    ],
)
def test_submit_refuses_what_the_worker_would_not_take(
    tmp_path: Path, queue: Path, capsys: pytest.CaptureFixture[str], name: str, reason: str
) -> None:
    src = tmp_path / name
    if name != "missing.csv":
        src.write_text("identity,audio\ncust-0,cust-0.wav\n")
    assert main(["submit", str(src), "--queue-dir", str(queue)]) == 1
    assert f"{src}: {reason}" in capsys.readouterr().out
    assert not (queue / "inbox").exists() or os.listdir(queue / "inbox") == []


def test_submit_needs_an_existing_queue(tmp_path: Path) -> None:
    src = tmp_path / "m.csv"
    src.write_text("identity,audio\nx,x.wav\n")
    with pytest.raises(SystemExit, match="2"):
        main(["submit", "--queue-dir", str(tmp_path / "nope")])  # no FILE: argparse's exit 2
    assert main(["submit", str(src), "--queue-dir", str(tmp_path / "nope")]) == 1
    assert not (tmp_path / "nope").exists()
