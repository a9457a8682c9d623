"""Settings: sources, precedence, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.cli import build_parser, main, masked_settings, settings_from_args
from worker.settings import Settings


def test_env_is_read_with_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENROLLER_RATE_LIMIT", "7.5")
    monkeypatch.setenv("ENROLLER_QUEUE_POLLING", "1")
    settings = Settings()
    assert settings.rate_limit == 7.5
    assert settings.queue_polling is True


def test_flag_beats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENROLLER_RATE_LIMIT", "7.5")
    args = build_parser().parse_args(["config", "--rate-limit", "3"])
    assert settings_from_args(args).rate_limit == 3.0


def test_key_file_is_read(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("s3cret-key\n")
    settings = Settings(api_key_file=key_file)
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == "s3cret-key"


def test_missing_key_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["config", "--api-key-file", str(tmp_path / "absent")])
    assert code == 2
    err = capsys.readouterr().err
    assert "api_key_file" in err and "cannot be read" in err
    assert "Traceback" not in err


def test_config_masks_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--api-key", "very-secret-value", "--api-password", "pw-secret-1"]) == 0
    out = capsys.readouterr().out
    assert "very-secret-value" not in out and "pw-secret-1" not in out
    assert '"api_key": "********"' in out


def test_audio_root_defaults_under_queue(tmp_path: Path) -> None:
    settings = Settings(queue_dir=tmp_path)
    assert settings.resolved_audio_root == tmp_path / "audio"
    assert masked_settings(settings)["audio_root"] == str(tmp_path / "audio")


def test_invalid_value_names_flag_and_env(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--rate-limit", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--rate-limit / ENROLLER_RATE_LIMIT" in err
