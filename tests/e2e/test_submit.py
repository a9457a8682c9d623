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
from tests.support import make_settings, report_of, run_once
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
    """A file that is not a manifest, or has no row that can run, is refused; and with it the
    good file beside it (several files: all or none)."""
    good = tmp_path / "good.csv"
    good.write_text("identity,audio\ncust-0,cust-0.wav\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("identity,audio\ncust-9,cust-9/never-recorded.wav\n")
    headless = tmp_path / "headless.csv"
    headless.write_text("name,file\ncust-1,cust-1.wav\n")
    args = ["submit", str(good), str(bad), "--queue-dir", str(queue)]
    args += ["--owner", "demo", "--space", "main"]

    assert main(args) == 1
    out = capsys.readouterr().out
    assert f'{bad} line 2: audio "cust-9/never-recorded.wav": does not exist' in out
    assert f"{bad}: none of its 1 enrollment can run: nothing to queue" in out
    assert "nothing submitted: 2 problem(s)" in out
    # Not the bad file, not the good one beside it, and no temporary copy left behind.
    assert os.listdir(queue / "inbox") == []

    assert main([*args[:1], str(headless), *args[3:]]) == 1
    assert f"{headless} line 1: " in capsys.readouterr().out  # the header is the problem
    assert os.listdir(queue / "inbox") == []

    assert main([*args, "--no-validate"]) == 0
    assert sorted(os.listdir(queue / "inbox")) == ["bad.csv", "good.csv"]


async def test_an_export_with_a_few_bad_rows_still_runs(
    tmp_path: Path, queue: Path, emulator: EmulatorHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 30: rows with problems are printed and the file is queued (exit 0); the worker
    reports them failed without a request or a credit. `--strict` refuses the file."""
    src = tmp_path / "tonight.csv"
    src.write_text(
        "identity,audio,note\n"
        "cust-0,cust-0.wav,fine\n"
        "Cust 7,cust-1.wav,a capital and a space\n"
        "cust-2,cust-2.wav,fine\n"
        "cust-9,cust-9.wav,never recorded\n"
    )
    args = ["submit", str(src), "--queue-dir", str(queue), "--owner", "demo", "--space", "main"]
    assert main([*args, "--strict"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == [
        f"{src}: 2 of 4 enrollments cannot run, and --strict refuses such a file",
        "nothing submitted: 3 problem(s)",
    ]
    assert os.listdir(queue / "inbox") == []

    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == [
        f'{src} line 3: identity "Cust 7": handles are lowercase letters, digits and hyphens',
        f'{src} line 5: audio "cust-9.wav": does not exist '
        f"({queue / 'audio' / 'cust-9.wav'}; audio root {queue / 'audio'})",
        f"{src}: 2 of 4 enrollments will fail with no request and no credit; the job report, "
        "failures CSV and retry manifest list them (--strict refuses such a file)",
    ]
    m = _LINE.match(out[3])
    assert m is not None and len(out) == 4, out
    assert os.listdir(queue / "inbox") == ["tonight.csv"]

    settings = make_settings(queue, emulator.base_url)
    assert await run_once(settings) == 1  # rows failed: said in the exit code
    report = report_of(queue, "tonight")
    outcomes = {r["identity"]: (r["outcome"], r["attempts"]) for r in report["enrollments"]}
    assert outcomes == {
        "cust-0": ("enrolled", 1),
        "Cust 7": ("failed", 0),
        "cust-2": ("enrolled", 1),
        "cust-9": ("failed", 0),
    }
    assert report["credits_spent"] == 2
    sent = [seen.path for seen in emulator.requests]
    assert not any(seen.mentions("cust-9") for seen in emulator.requests), sent  # no request
    assert report["job_id"] == m["job"]


def test_a_problem_every_row_shares_is_said_once_with_a_count(
    tmp_path: Path, queue: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """10 000 rows without owner and space and with one unknown model: a line each, not
    30 000; a problem shared by some rows says how many and where it is first."""
    src = tmp_path / "export.csv"
    lines = ["identity,audio,model", *(f"cust-{i},cust-{i}.wav,phone/v9" for i in range(10_000))]
    src.write_text("\n".join(lines) + "\n")
    assert main(["submit", str(src), "--queue-dir", str(queue)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{src}: owner: is missing; name it in the manifest or set ENROLLER_OWNER "
        "(all 10000 enrollments)",
        f"{src}: space: is missing; name it in the manifest or set ENROLLER_SPACE "
        "(all 10000 enrollments)",
        f'{src}: model "phone/v9": unknown model; known models are default/v1, digital/v1, '
        "phone/v1 (all 10000 enrollments)",
        f"{src}: none of its 10000 enrollments can run: nothing to queue",
        "nothing submitted: 4 problem(s)",
    ]

    some = tmp_path / "some.csv"
    some.write_text(
        "identity,audio,model\ncust-0,cust-0.wav,phone/v1\ncust-1,cust-1.wav,phone/v9\n"
        "cust-2,cust-2.wav,phone/v1\ncust-3,cust-3.wav,phone/v9\n"
    )
    args = ["submit", str(some), "--queue-dir", str(queue), "--owner", "demo", "--space", "main"]
    assert main(args) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        f'{some}: model "phone/v9": unknown model; known models are default/v1, digital/v1, '
        "phone/v1 (2 of 4 enrollments, first at line 3)"
    )


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
