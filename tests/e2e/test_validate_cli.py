"""`enroller validate` over real folders: exactly one clear error per broken thing, exit codes.

Audio is generated into tmp_path (tests/audiogen.py). A half-written manifest still growing is
the queue's concern (tests/e2e/test_queue.py), not validate's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.audiogen import write_audio
from worker.cli import main


@pytest.fixture
def audio_root(tmp_path: Path) -> Path:
    root = tmp_path / "audio"
    write_audio(root / "ann" / "1.wav", 5.0, 0.5, 16000)
    write_audio(root / "ann" / "2.flac", 3.0, 0.0, 16000)
    write_audio(root / "bob" / "1.ogg", 5.0, 0.0, 16000)
    write_audio(root / "carl" / "1.wav", 5.0, 0.0, 8000)
    write_audio(root / "low.wav", 5.0, 0.0, 1000)
    write_audio(root / "long.wav", 180.0, 0.0, 8000)
    outside = write_audio(tmp_path / "outside" / "x.wav", 5.0)
    (root / "link.wav").symlink_to(outside)
    return root


def write(folder: Path, name: str, content: object) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else json.dumps(content, indent=2)
    (folder / name).write_text(text, encoding="utf-8")


def good_enrollment(identity: str = "ann") -> dict[str, object]:
    return {"identity": identity, "audios": ["ann/1.wav", "ann/2.flac"], "minAudios": 2}


def expected(name: str, tmp_path: Path) -> str:
    """BROKEN's line for `name`, with the resolved paths the message shows filled in."""
    return BROKEN[name][1].format(root=tmp_path / "audio", tmp=tmp_path)


# Each broken manifest holds exactly one problem (plus good enrollments that must stay quiet).
BROKEN: dict[str, tuple[object, str]] = {
    "bad-json.json": (
        '{"enrollments": [\n  {"identity": "ann",, "audios": []}\n]}\n',
        "bad-json.json line 2 column 22: not valid JSON: Expecting property name enclosed "
        "in double quotes",
    ),
    "bad-handle.json": (
        {"enrollments": [good_enrollment(), {"identity": "Cust 7", "audios": ["bob/1.ogg"]}]},
        'bad-handle.json enrollments[1]: identity "Cust 7": handles are lowercase letters, '
        "digits and hyphens",
    ),
    "missing-audio.json": (
        {"identity": "dan", "audios": ["dan/nope.wav"]},
        'missing-audio.json: audios[0] "dan/nope.wav": does not exist '
        "({root}/dan/nope.wav; audio root {root})",
    ),
    "dot-dot.json": (
        {"enrollments": [good_enrollment(), {"identity": "eve", "audios": ["../outside/x.wav"]}]},
        'dot-dot.json enrollments[1]: audios[0] "../outside/x.wav": leads outside the audio root '
        "({tmp}/outside/x.wav is not under {root}: ENROLLER_AUDIO_ROOT)",
    ),
    "symlink.csv": (
        "identity,audio\nann,ann/1.wav\nfay,link.wav\n",
        'symlink.csv line 3: audio "link.wav": leads outside the audio root '
        "(it resolves to {tmp}/outside/x.wav; audio root {root})",
    ),
    "low-rate.json": (
        {"model": "digital/v1", "enrollments": [{"identity": "gus", "audios": ["low.wav"]}]},
        'low-rate.json enrollments[0]: audios[0] "low.wav": sample rate 1000 Hz is below the '
        "16000 Hz that digital/v1 needs",
    ),
    "three-minutes.csv": (
        "identity,audio,model\nbob,bob/1.ogg,phone/v1\nhal,long.wav,phone/v1\n",
        'three-minutes.csv line 3: audio "long.wav": 180.0 s is longer than the 120 s maximum '
        "of phone/v1",
    ),
    "duplicate-pair.json": (
        {"enrollments": [good_enrollment(), {"identity": "ann", "audios": ["bob/1.ogg"]}]},
        'duplicate-pair.json enrollments[1]: identity "ann": voiceprint "main" is already '
        "listed at enrollments[0]; a voiceprint may appear once per job",
    ),
    "duplicate-audio.json": (
        {"identity": "ann", "audios": ["ann/1.wav", "ann/2.flac", "ann/1.wav"]},
        'duplicate-audio.json: audios[2] "ann/1.wav": listed twice (also audios[0])',
    ),
    "empty.csv": ("", "empty.csv: is empty"),
}


@pytest.fixture
def broken_dir(tmp_path: Path, audio_root: Path) -> Path:
    folder = tmp_path / "broken"
    for name, (content, _) in BROKEN.items():
        write(folder, name, content)
    # Not manifests by the queue's naming rule: never validated, never reported.
    write(folder, ".writing.json", "{")
    write(folder, "next.json.tmp", "{")
    write(folder, "README.txt", "hello")
    return folder


@pytest.fixture
def good_dir(tmp_path: Path, audio_root: Path) -> Path:
    folder = tmp_path / "good"
    write(
        folder,
        "job.json",
        {
            "owner": "acme",
            "model": {"handle": "digital", "version": "v1"},
            "enrollments": [
                good_enrollment(),
                {"identity": "bob", "alias": "Bob", "audios": [str(audio_root / "bob/1.ogg")]},
            ],
        },
    )
    write(folder, "single.json", {"identity": "carl", "audios": ["carl/1.wav"]})
    write(
        folder,
        "batch.csv",
        "identity,audio,voiceprint,minAudios\n"
        "ann,ann/1.wav,phone,2\n"
        "ann,ann/2.flac,phone,\n"
        "bob,bob/1.ogg,,\n",
    )
    return folder


def flags(audio_root: Path) -> list[str]:
    return ["--audio-root", str(audio_root), "--owner", "acme", "--space", "calls"]


def test_a_folder_of_broken_manifests_gives_one_clear_error_each(
    broken_dir: Path,
    audio_root: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # so that names are shown as "broken/x.json"
    code = main(["validate", "broken", *flags(audio_root)])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    problems = [line for line in out if not _is_summary(line)]
    assert sorted(problems) == sorted(f"broken/{expected(name, tmp_path)}" for name in BROKEN)
    summaries = [line for line in out if _is_summary(line)]
    assert len(summaries) == len(BROKEN) + 1  # one per file, then the verdict
    assert "broken/bad-handle.json: 1 of 2 enrollments invalid (1 problem); 1 valid" in summaries
    assert "broken/empty.csv: rejected: the file cannot be used (1 problem)" in summaries
    assert out[-1] == f"{len(BROKEN)} of {len(BROKEN)} manifests with problems"


def _is_summary(line: str) -> bool:
    file_summary = any(m in line for m in (" invalid (", ": rejected: ", ": ok: "))
    return file_summary or line.endswith(" manifests with problems")


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_each_broken_manifest_alone(
    name: str, broken_dir: Path, audio_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["validate", str(broken_dir / name), *flags(audio_root), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 1 and result["ok"] is False
    (file,) = result["files"]
    assert [
        str(p["file"]).replace(str(broken_dir) + "/", "") + (f" {p['place']}" if p["place"] else "")
        for p in file["errors"]
    ] == [BROKEN[name][1].split(":")[0]]


def test_a_good_folder_is_valid(
    good_dir: Path, audio_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["validate", str(good_dir), *flags(audio_root)])
    out = capsys.readouterr().out.splitlines()
    assert code == 0, out
    assert out == [
        f"{good_dir}/batch.csv: ok: 2 enrollments, 3 audio files, 13.5 s of audio",
        f"{good_dir}/job.json: ok: 2 enrollments, 3 audio files, 13.5 s of audio",
        f"{good_dir}/single.json: ok: 1 enrollment, 1 audio file, 5.0 s of audio",
        "all 3 manifests valid",
    ]


def test_json_output_is_a_dumped_model(
    good_dir: Path, broken_dir: Path, audio_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "validate",
            str(good_dir / "job.json"),
            str(broken_dir / "low-rate.json"),
            *flags(audio_root),
            "--json",
        ]
    )
    result = json.loads(capsys.readouterr().out)
    assert code == 1
    assert result["ok"] is False and result["audio_root"] == str(audio_root)
    good, bad = result["files"]
    assert (good["ok"], good["kind"], good["valid"], good["audio_files"]) == (True, "job", 2, 3)
    assert (bad["ok"], bad["invalid"]) == (False, 1)
    assert bad["errors"][0]["field"] == "audios[0]"
    assert bad["errors"][0]["reason"].startswith("sample rate 1000 Hz")


def test_a_deprecated_model_warns_but_passes(
    tmp_path: Path, audio_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, "old.json", {"model": "default/v1", "identity": "bob", "audios": ["bob/1.ogg"]})
    code = main(["validate", str(tmp_path / "old.json"), *flags(audio_root)])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert (
        f'{tmp_path}/old.json: warning: model "default/v1": default/v1 is deprecated; use phone/v1'
        in out
    )


def test_missing_paths_and_empty_folders_are_problems(
    tmp_path: Path, audio_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    code = main(
        ["validate", str(tmp_path / "nope.json"), str(tmp_path / "empty"), *flags(audio_root)]
    )
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[:2] == [
        f"{tmp_path}/nope.json: no such file or folder",
        f"{tmp_path}/empty: folder holds no manifests (*.json, *.csv)",
    ]


def test_validate_through_python_dash_m(good_dir: Path, broken_dir: Path, audio_root: Path) -> None:
    env = {
        **os.environ,
        "ENROLLER_AUDIO_ROOT": str(audio_root),
        "ENROLLER_OWNER": "acme",
        "ENROLLER_SPACE": "calls",
    }
    ok = subprocess.run(
        [sys.executable, "-m", "worker", "validate", str(good_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.splitlines()[-1] == "all 3 manifests valid"
    bad = subprocess.run(
        [sys.executable, "-m", "worker", "validate", str(broken_dir / "symlink.csv")],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stderr == ""  # no traceback, no log noise
    line = expected("symlink.csv", broken_dir.parent)
    assert bad.stdout.splitlines()[0] == f"{broken_dir}/{line}"
