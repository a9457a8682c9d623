"""deploy/systemd/: units that systemd accepts, running real commands with real settings.

`systemd-analyze verify` checks each unit as systemd would load it (unknown keys, bad
specifiers, a missing executable). The units name the install path of the README
(/opt/voiceprint-enroller/bin/enroller); the copy verified here names this venv's `enroller`
instead, so that "the executable exists" is checked against a real one.
"""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy_checks import check_enroller_command, check_variable
from worker.config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
INSTALLED = "/opt/voiceprint-enroller/bin/enroller"
ENROLLER = Path(sys.executable).parent / "enroller"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze not found: apt-get install systemd"
)


def unit(name: str) -> configparser.ConfigParser:
    # Repeated keys (Environment=) are legal in units: keep the last for lookups; see below.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text(encoding="utf-8"))
    return parser


def lines(name: str, key: str) -> list[str]:
    """Every value of `key=` in the unit (Environment= may repeat)."""
    text = (UNITS / name).read_text(encoding="utf-8")
    return re.findall(rf"^{key}=(.*)$", text, flags=re.MULTILINE)


def services() -> list[str]:
    return sorted(p.name for p in UNITS.glob("*.service"))


def verify(folder: Path) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    argv = [SYSTEMD_ANALYZE, "verify", *sorted(str(p) for p in folder.iterdir())]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def local_copy(tmp_path: Path, edit: tuple[str, str] | None = None) -> Path:
    folder = tmp_path / "units"
    folder.mkdir(parents=True)
    for path in UNITS.iterdir():
        text = path.read_text(encoding="utf-8").replace(INSTALLED, str(ENROLLER))
        if edit is not None:
            text = text.replace(*edit)
        (folder / path.name).write_text(text, encoding="utf-8")
    return folder


@needs_systemd_analyze  # one test, so that a machine without systemd skips in one line
def test_systemd_analyze_verify_accepts_every_unit_and_would_catch_a_typo(tmp_path: Path) -> None:
    done = verify(local_copy(tmp_path / "as-shipped"))
    # Unknown keys are only warnings (exit 0): any line about our units is a failure.
    ours = [line for line in done.stderr.splitlines() if "enroller" in line]
    assert done.returncode == 0 and not ours, done.stderr

    typo = verify(local_copy(tmp_path / "typo", ("TimeoutStopSec=", "TimeoutStopSecs=")))
    assert "Unknown key" in typo.stderr and "TimeoutStopSecs" in typo.stderr


def test_the_units_are_there() -> None:
    assert services() == ["enroller-once.service", "enroller.service"]
    timer = unit("enroller-once.timer")
    assert timer["Timer"]["Unit"] == "enroller-once.service"
    assert timer["Timer"]["OnCalendar"] and timer["Install"]["WantedBy"] == "timers.target"


@pytest.mark.parametrize("name", ["enroller-once.service", "enroller.service"])
def test_commands_and_variables_are_real(name: str) -> None:
    (exec_start,) = lines(name, "ExecStart")
    argv = shlex.split(exec_start)
    assert argv[0] == INSTALLED
    check_enroller_command(["enroller", *argv[1:]])
    env = [shlex.split(value)[0].split("=", 1)[0] for value in lines(name, "Environment")]
    assert "ENROLLER_API_KEY_FILE" in env
    for var in env:
        check_variable(var, name)


def test_the_scheduled_run_is_one_shot_and_not_restarted() -> None:
    service = unit("enroller-once.service")["Service"]
    assert service["Type"] == "oneshot"
    assert shlex.split(service["ExecStart"])[1:] == ["run", "--once"]
    assert "Restart" not in service  # exit 1 and 2 would fail again the same way


@pytest.mark.parametrize("name", ["enroller-once.service", "enroller.service"])
def test_stop_timeout_outlasts_the_shutdown_grace(name: str) -> None:
    grace = Settings.model_fields["shutdown_grace"].default
    stop = unit(name)["Service"]["TimeoutStopSec"]
    assert float(stop) > grace + 5, name
    for value in lines(name, "Environment"):
        assert not value.startswith("ENROLLER_SHUTDOWN_GRACE="), "keep the default or adjust"
