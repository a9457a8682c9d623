"""Settings: sources, precedence, secrets, and clean refusals of a bad configuration."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from worker.cli import build_parser, main, masked_settings, settings_from_args
from worker.config.described import key_file_warning, secret_settings, secret_values, url_settings
from worker.config.keyfile import KeyFileProblem, read_key_file
from worker.config.loading import InvalidSettings, load_settings
from worker.config.settings import Settings, check_url


@pytest.fixture(autouse=True)
def _no_outside_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test sees only the ENROLLER_* variables and .env it sets itself."""
    for key in list(os.environ):
        if key.upper().startswith("ENROLLER_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


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
    assert err == (
        f"enroller: invalid setting api_key_file (from --api-key-file): "
        f"{tmp_path / 'absent'} cannot be read (No such file or directory)\n"
    )


@pytest.mark.parametrize(
    ("content", "rule"),
    [(b"", "is empty"), (b" \n", "is empty"), (b"\xff\xfe", "is not UTF-8 text")],
)
def test_a_key_file_that_gives_no_key_is_refused(tmp_path: Path, content: bytes, rule: str) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(content)
    with pytest.raises(KeyFileProblem, match=rule):
        read_key_file(key_file)


def test_a_key_file_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # reading a FIFO with no writer would block the start forever
    with pytest.raises(KeyFileProblem, match="is not a regular file"):
        read_key_file(fifo)
    with pytest.raises(KeyFileProblem, match="is not a regular file"):
        read_key_file(tmp_path)


def test_an_oversized_key_file_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(b"k" * (64 * 1024 + 1))
    with pytest.raises(KeyFileProblem, match="is larger than 65536 bytes"):
        read_key_file(key_file)


@pytest.mark.parametrize(
    ("mode", "warns"), [(0o600, False), (0o400, False), (0o640, True), (0o604, True)]
)
def test_a_key_file_readable_by_group_or_others_warns(
    tmp_path: Path, mode: int, warns: bool
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("k-123")
    key_file.chmod(mode)
    settings = Settings(api_key_file=key_file)
    warning = key_file_warning(settings)
    if warns:
        assert warning is not None and f"mode {mode:04o}" in warning and "chmod 600" in warning
    else:
        assert warning is None


def test_no_key_file_no_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENROLLER_API_KEY", "k-from-env")
    assert key_file_warning(Settings()) is None


def test_config_masks_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ENROLLER_API_KEY", "very-secret-value")
    monkeypatch.setenv("ENROLLER_API_PASSWORD", "pw-secret-1")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "very-secret-value" not in out and "pw-secret-1" not in out
    assert json.loads(out)["api_key"] == "********"


def test_config_masks_the_user_info_of_the_api_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ENROLLER_API_URL", "https://bob:hunter2-pw@api.example.com:8443/v1")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["api_url"] == "https://********@api.example.com:8443/v1"
    assert "hunter2-pw" not in out and "bob" not in out


def test_audio_root_defaults_under_queue(tmp_path: Path) -> None:
    settings = Settings(queue_dir=tmp_path)
    assert settings.resolved_audio_root == tmp_path / "audio"
    assert masked_settings(settings)["audio_root"] == str(tmp_path / "audio")


def test_secrets_and_urls_are_found_from_the_model() -> None:
    assert secret_settings() == ["api_key", "api_password"]
    assert "api_url" in url_settings()


def test_secret_values_include_url_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENROLLER_API_KEY", "k-abc-123")
    settings = Settings(api_url="https://bob:p%40ss-word@h/v1")
    values = secret_values(settings)
    assert {"k-abc-123", "p%40ss-word", "p@ss-word", "bob:p%40ss-word"} <= set(values)
    assert "bob" not in values


# --- clean refusals --------------------------------------------------------------------------


def test_invalid_flag_names_the_setting_its_source_and_the_rule(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["config", "--rate-limit", "-1"]) == 2
    assert capsys.readouterr().err == (
        "enroller: invalid setting rate_limit (from --rate-limit): must be greater than 0\n"
    )


def test_every_problem_gets_its_own_line_from_each_source(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ENROLLER_API_PASSWORD", "short-1")
    (tmp_path / ".env").write_text("ENROLLER_BURST=zero\n")
    with pytest.raises(InvalidSettings, match="rate_limit") as caught:
        load_settings({"rate_limit": "fast"})
    assert caught.value.lines == [
        "invalid setting api_password (from ENROLLER_API_PASSWORD in the environment): "
        "must be 8 to 50 characters long",
        "invalid setting rate_limit (from --rate-limit): "
        "must be a valid number, unable to parse string as a number",
        "invalid setting burst (from ENROLLER_BURST in .env): "
        "must be a valid integer, unable to parse string as an integer",
    ]
    assert "short-1" not in str(caught.value) and "fast" not in str(caught.value)


def test_a_password_of_any_wrong_length_never_shows_in_the_refusal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for password in ("", "1234567", "p" * 51):
        monkeypatch.setenv("ENROLLER_API_PASSWORD", password)
        with pytest.raises(InvalidSettings, match="must be 8 to 50 characters long") as caught:
            load_settings({})
        assert caught.value.lines == [
            "invalid setting api_password (from ENROLLER_API_PASSWORD in the environment): "
            "must be 8 to 50 characters long"
        ]


def test_an_unreadable_dotenv_is_a_clean_refusal(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"ENROLLER_RATE_LIMIT=\xff\n")
    with pytest.raises(InvalidSettings, match=r"^\.env: is not UTF-8 text$"):
        load_settings({})


@pytest.mark.parametrize(
    "url",
    ["localhost:8765", "ftp://h/v1", "http:///v1", "https://h:port/v1", "", "h/v1"],
)
def test_api_url_must_be_http_with_a_host_and_the_rule_never_echoes_it(url: str) -> None:
    with pytest.raises(InvalidSettings, match="api_url") as caught:
        load_settings({"api_url": url})
    (line,) = caught.value.lines
    assert line.startswith("invalid setting api_url (from --api-url): must be a URL (http://")
    if url:
        assert url not in line


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8765/v1", "https://API.example.com/v1", "HTTPS://[::1]:8/v1"]
)
def test_good_urls_pass(url: str) -> None:
    check_url(url, ("http", "https"))
