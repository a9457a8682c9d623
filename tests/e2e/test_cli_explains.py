"""Issue 30 point 4: a CLI that explains itself, as the user sees it (lines printed, exit codes).

In-process through `worker.cli.main`, except where a shell is the user (completion scripts).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.audiogen import write_audio
from worker.audio.inspect import DEFAULT_MODEL
from worker.base.exitcodes import EXIT_FATAL
from worker.cli import COMMANDS, main
from worker.config.settings import Settings


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert _help(["--version"], capsys).strip() == "enroller 0.1.0"


def test_top_level_help_describes_every_command_including_demo_and_emulator(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _help(["--help"], capsys)
    assert "(from " not in out
    listed = {line.split()[0]: line for line in out.splitlines() if line.startswith("    ")}
    for name in [cmd.name for cmd in COMMANDS] + ["demo", "emulator"]:
        assert name in listed, name
    assert "run the local voiceprint API" in out
    assert "the whole product in one command" in out


def test_each_command_lists_only_the_settings_it_uses(capsys: pytest.CaptureFixture[str]) -> None:
    status = _help(["status", "--help"], capsys)
    assert "--convert" not in status and "--rate-limit" not in status
    assert "--queue-dir" in status
    validate = _help(["validate", "--help"], capsys)
    assert "--convert" in validate and "--model" in validate and "--metrics-port" not in validate
    assert "--metrics-port" in _help(["run", "--help"], capsys)
    for cmd in COMMANDS:  # a one-line summary on every subcommand
        assert cmd.summary and "\n" not in cmd.summary


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_scripts_are_valid_and_complete_commands_and_flags(
    shell: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert "validate" in script and "--convert" in script and "emulator" in script
    path = tmp_path / f"enroller.{shell}"
    path.write_text(script)
    checked = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    if shell == "bash":  # what pressing TAB after `enroller val` offers
        probe = (
            f"source {path}; COMP_WORDS=(enroller val); COMP_CWORD=1; _enroller; "
            'echo "${COMPREPLY[@]}"; COMP_WORDS=(enroller status --q); COMP_CWORD=2; '
            '_enroller; echo "${COMPREPLY[@]}"'
        )
        out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30)
        assert out.stdout.splitlines() == ["validate", "--queue-dir"]
    assert "install" in _help(["completion", "--help"], capsys)


def test_an_unknown_enroller_variable_is_warned_with_the_closest_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("ENROLLER_OWNR=acme\n# ENROLLER_COMMENTED=1\n")
    monkeypatch.setenv("ENROLLER_AUDIOROOT", str(tmp_path))
    assert main(["config"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "enroller: warning: ENROLLER_AUDIOROOT (in the environment) is not a setting and is "
        "ignored; did you mean ENROLLER_AUDIO_ROOT?",
        "enroller: warning: ENROLLER_OWNR (in .env) is not a setting and is ignored; "
        "did you mean ENROLLER_OWNER?",
    ]


@pytest.fixture
def audio(tmp_path: Path) -> Path:
    root = tmp_path / "audio"
    write_audio(root / "low.wav", 5.0, 0.0, 8000)
    write_audio(root / "call.mp3", 5.0, 0.0, 16000)
    return root


def _validate(
    manifest: dict[str, object], audio: Path, capsys: pytest.CaptureFixture[str], *flags: str
) -> tuple[int, list[str]]:
    path = audio.parent / "m.json"
    path.write_text(json.dumps(manifest))
    code = main(
        ["validate", str(path), "--audio-root", str(audio), "--owner", "o", "--space", "s", *flags]
    )
    return code, [
        line.replace(str(path), "m.json") for line in capsys.readouterr().out.splitlines()
    ]


def test_enroller_model_is_the_default_model(
    audio: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = {"identity": "ann", "audios": ["low.wav"]}
    assert _validate(manifest, audio, capsys)[0] == 0  # phone/v1 takes 8 kHz
    monkeypatch.setenv("ENROLLER_MODEL", "digital/v1")
    code, out = _validate(manifest, audio, capsys)
    assert code == 1
    assert out[0] == (
        'm.json: audios[0] "low.wav": sample rate 8000 Hz is below the 16000 Hz that '
        "digital/v1 needs"
    )
    monkeypatch.setenv("ENROLLER_MODEL", "Phone/V1")
    assert main(["validate", str(audio)]) == EXIT_FATAL
    assert (
        "invalid setting model (from ENROLLER_MODEL in the environment)" in capsys.readouterr().err
    )


def test_a_model_in_capitals_is_refused_with_the_fix(
    audio: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _validate(
        {"identity": "ann", "model": "Phone/V1", "audios": ["low.wav"]}, audio, capsys
    )
    assert code == 1
    assert out[0] == 'm.json: model "Phone/V1": model handles are lowercase: write "phone/v1"'


def test_mp3_names_enroller_convert_and_validate_convert_accepts_it(
    audio: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = {"identity": "ann", "audios": ["call.mp3"]}
    code, out = _validate(manifest, audio, capsys)
    assert code == 1
    assert out[0].startswith('m.json: audios[0] "call.mp3": format mp3 is not accepted by the API')
    assert out[0].endswith(
        "set ENROLLER_CONVERT=true (or --convert) to convert it to FLAC before upload"
    )
    code, out = _validate(manifest, audio, capsys, "--convert")
    assert code == 0, out  # what the worker will do with the same setting: convert, then upload


def test_a_missing_audio_shows_the_resolved_path_and_the_root(
    audio: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _validate({"identity": "ann", "audios": ["calls/nope.wav"]}, audio, capsys)
    assert code == 1
    assert out[0] == (
        f'm.json: audios[0] "calls/nope.wav": does not exist ({audio}/calls/nope.wav; '
        f"audio root {audio})"
    )


def test_the_model_setting_defaults_to_the_worker_s_default_model() -> None:
    """Written twice (config may not import audio): this keeps the two the same."""
    assert Settings.model_fields["model"].default == DEFAULT_MODEL
