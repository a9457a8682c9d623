"""`enroller` as a real process (issue 21): secrets refused on the command line, credentials in
URLs masked, and a bad configuration refused with exit 2, one line per problem, no traceback,
no echo of a value, by every subcommand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

KEY = "k-Sup3r-s3cret-0451"
PASSWORD = "pw-7chr"  # one short of the API's 8
SUBCOMMANDS = [
    ["run", "--once"],
    ["validate", "m.json"],
    ["status"],
    ["config"],
    ["healthcheck"],
]


def enroller(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m worker ARGS` in `cwd`, with only the ENROLLER_* variables given here."""
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("ENROLLER_")}
    clean.update(ENROLLER_QUEUE_DIR=str(cwd / "queue"), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_refused(result: subprocess.CompletedProcess[str], *secrets: str) -> list[str]:
    """Exit 2, no traceback, nothing on stdout, no secret anywhere; returns the stderr lines."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    for secret in secrets:
        assert secret not in result.stderr
    return result.stderr.splitlines()


# --- no secret on a command line -------------------------------------------------------------


@pytest.mark.parametrize("command", SUBCOMMANDS, ids=lambda c: c[0])
def test_api_key_flag_is_refused_by_every_subcommand(tmp_path: Path, command: list[str]) -> None:
    result = enroller(tmp_path, command[0], "--api-key", KEY, *command[1:])
    (line,) = assert_refused(result, KEY)
    assert line.startswith("enroller: --api-key is refused: a command line can be read by every")
    for safe_way in ("ENROLLER_API_KEY in the environment", ".env", "--api-key-file"):
        assert safe_way in line
    assert "ENROLLER_API_KEY_FILE" in line


@pytest.mark.parametrize(
    "argv",
    [
        ["--api-key", KEY, "config"],  # before the subcommand
        ["config", f"--api-key={KEY}"],
        ["config", "--api-key"],  # no value at all
        ["config", "--api-password", KEY],
        ["config", "--api-pass", KEY],  # an abbreviation argparse would accept
    ],
    ids=["before-command", "equals", "no-value", "password", "abbreviated"],
)
def test_every_spelling_of_a_secret_flag_is_refused(tmp_path: Path, argv: list[str]) -> None:
    (line,) = assert_refused(enroller(tmp_path, *argv), KEY)
    assert " is refused: " in line and "--api-key-file / ENROLLER_API_KEY_FILE" in line


def test_the_key_from_the_environment_is_still_taken(tmp_path: Path) -> None:
    result = enroller(tmp_path, "config", env={"ENROLLER_API_KEY": KEY})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["api_key"] == "********"
    assert KEY not in result.stdout + result.stderr


def test_help_shows_no_secret_flag(tmp_path: Path) -> None:
    result = enroller(tmp_path, "run", "--help")
    assert result.returncode == 0
    assert "--api-key-file" in result.stdout
    assert "--api-key " not in result.stdout and "--api-password" not in result.stdout


# --- the key file ----------------------------------------------------------------------------


def _key_file(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "api_key"
    path.write_text(KEY + "\n")
    path.chmod(mode)
    return path


def test_a_key_file_others_can_read_warns_once(tmp_path: Path) -> None:
    key_file = _key_file(tmp_path, 0o644)
    result = enroller(tmp_path, "config", "--api-key-file", str(key_file))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"enroller: warning: api_key_file {key_file} can be read by group or others "
        "(mode 0644): chmod 600 it, or mount the secret with mode 0400"
    ]
    assert KEY not in result.stdout + result.stderr


def test_a_private_key_file_gives_no_warning(tmp_path: Path) -> None:
    key_file = _key_file(tmp_path, 0o600)
    result = enroller(tmp_path, "config", env={"ENROLLER_API_KEY_FILE": str(key_file)})
    assert result.returncode == 0 and result.stderr == ""


def test_the_daemon_logs_the_key_file_warning_once(tmp_path: Path) -> None:
    key_file = _key_file(tmp_path, 0o640)
    env = {
        "ENROLLER_API_KEY_FILE": str(key_file),
        "ENROLLER_API_URL": "http://127.0.0.1:9/v1",  # nothing listens: exits 2 at once
        "ENROLLER_MAX_RETRIES": "0",
        "ENROLLER_LOG_FORMAT": "json",
    }
    result = enroller(tmp_path, "run", "--once", env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines()]
    warnings = [e for e in events if e["event"] == "api_key_file_too_open"]
    assert len(warnings) == 1 and "mode 0640" in warnings[0]["reason"]
    assert KEY not in result.stderr


# --- credentials in URLs ---------------------------------------------------------------------

URL_WITH_CREDENTIALS = "http://bob:Url-pa55word@127.0.0.1:9/v1"
MASKED_URL = "http://********@127.0.0.1:9/v1"


def test_config_masks_credentials_in_the_api_url(tmp_path: Path) -> None:
    result = enroller(tmp_path, "config", "--api-url", URL_WITH_CREDENTIALS)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["api_url"] == MASKED_URL
    assert "Url-pa55word" not in result.stdout and "bob:" not in result.stdout


def test_run_refuses_credentials_in_the_api_url_and_its_log_masks_them(tmp_path: Path) -> None:
    env = {
        "ENROLLER_API_URL": URL_WITH_CREDENTIALS,
        "ENROLLER_API_KEY": KEY,
        "ENROLLER_LOG_FORMAT": "json",
        "ENROLLER_LOG_LEVEL": "debug",
    }
    result = enroller(tmp_path, "run", "--once", env=env)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "Url-pa55word" not in result.stderr and "bob:" not in result.stderr
    assert KEY not in result.stderr
    (event,) = [json.loads(line) for line in result.stderr.splitlines()]
    assert event["event"] == "worker_cannot_start"
    assert event["reason"] == (
        f"api_url {MASKED_URL} holds credentials (user:password@), which this API does not take"
        " (it authenticates by API key or sign-in token only): remove them and set"
        " ENROLLER_API_KEY or ENROLLER_API_KEY_FILE"
    )


def test_an_invalid_url_is_refused_without_echoing_it(tmp_path: Path) -> None:
    result = enroller(tmp_path, "config", env={"ENROLLER_API_URL": "bob:Url-pa55word@host/v1"})
    (line,) = assert_refused(result, "Url-pa55word")
    assert line == (
        "enroller: invalid setting api_url (from ENROLLER_API_URL in the environment): "
        "must be a URL (http:// or https://) with a host"
    )


# --- clean refusals --------------------------------------------------------------------------

BAD_RATE = "lots"


@pytest.mark.parametrize("command", SUBCOMMANDS, ids=lambda c: c[0])
def test_a_short_password_and_a_non_numeric_rate_exit_2_from_any_source(
    tmp_path: Path, command: list[str]
) -> None:
    (tmp_path / ".env").write_text(f"ENROLLER_RATE_LIMIT={BAD_RATE}\n")
    result = enroller(
        tmp_path, *command, "--max-jobs", "0", env={"ENROLLER_API_PASSWORD": PASSWORD}
    )
    lines = assert_refused(result, PASSWORD, BAD_RATE)
    assert lines == [
        "enroller: invalid setting api_password (from ENROLLER_API_PASSWORD in the environment):"
        " must be 8 to 50 characters long",
        "enroller: invalid setting rate_limit (from ENROLLER_RATE_LIMIT in .env):"
        " must be a valid number, unable to parse string as a number",
        "enroller: invalid setting max_jobs (from --max-jobs): must be greater than or equal to 1",
    ]


def test_a_non_numeric_rate_flag_exits_2(tmp_path: Path) -> None:
    (line,) = assert_refused(enroller(tmp_path, "status", "--rate-limit", BAD_RATE), BAD_RATE)
    assert line.startswith("enroller: invalid setting rate_limit (from --rate-limit): must be")


def test_a_missing_key_file_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-key"
    result = enroller(tmp_path, "validate", "m.json", env={"ENROLLER_API_KEY_FILE": str(missing)})
    assert assert_refused(result) == [
        f"enroller: invalid setting api_key_file (from ENROLLER_API_KEY_FILE in the environment):"
        f" {missing} cannot be read (No such file or directory)"
    ]


def test_a_dotenv_that_is_not_text_exits_2(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"ENROLLER_API_PASSWORD=\xff\xfe-secret\n")
    assert assert_refused(enroller(tmp_path, "config"), "secret") == [
        "enroller: .env: is not UTF-8 text"
    ]


def test_the_demo_refuses_a_bad_worker_setting_cleanly(tmp_path: Path) -> None:
    """`enroller demo` comes through an entry point and builds the worker's Settings itself."""
    result = enroller(
        tmp_path, "demo", "--dir", str(tmp_path / "demo"), env={"ENROLLER_MAX_JOBS": "many"}
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "enroller: invalid setting max_jobs (from ENROLLER_MAX_JOBS in the environment):"
        " must be a valid integer, unable to parse string as an integer"
    )
