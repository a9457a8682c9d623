"""The crontab line of deploy/cron/ run as cron would: through /bin/sh, from its own folder.

What an operator relies on: settings come from the .env of the working directory (cron's
environment is nearly empty), a run that finds the previous one still holding the lock skips at
once with exit 75, and cron mails (prints) something only when a run did not end with 0.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sys
from pathlib import Path

import anyio
import pytest

from tests.audiogen import write_audio
from tests.deploy_checks import check_enroller_command, check_variable, enroller_commands_in_shell
from tests.emulator_harness import running_emulator

ROOT = Path(__file__).resolve().parents[2]
CRON = ROOT / "deploy" / "cron" / "voiceprint-enroller"
STATE = "/var/lib/voiceprint-enroller"
INSTALLED = "/opt/voiceprint-enroller/bin/enroller"


def cron_entries() -> list[tuple[str, str]]:
    """(schedule, command) of each job line of the /etc/cron.d file (with its user field)."""
    entries = []
    for line in CRON.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#") or re.match(r"^[A-Z_]+=", line):
            continue
        fields = line.split(None, 6)
        assert len(fields) == 7, f"not `m h dom mon dow user command`: {line}"
        entries.append((" ".join(fields[:5]), fields[6]))
    return entries


def settings_documented() -> list[str]:
    return re.findall(r"^#\s+(ENROLLER_\w+)=", CRON.read_text(encoding="utf-8"), re.MULTILINE)


def test_the_cron_line_runs_a_real_command_with_real_settings() -> None:
    ((schedule, command),) = cron_entries()
    assert schedule == "0 2 * * *"
    assert "%" not in command, "cron turns % into a newline"
    found = enroller_commands_in_shell(command)
    assert found == [["enroller", "run", "--once"]]
    for argv in found:
        check_enroller_command(argv)
    assert settings_documented()
    for name in settings_documented():
        check_variable(name, CRON.name)


def local_line(state: Path) -> str:
    ((_, command),) = cron_entries()
    return command.replace(INSTALLED, str(Path(sys.executable).parent / "enroller")).replace(
        STATE, str(state)
    )


def prepare(state: Path, base_url: str, audio_ok: bool) -> Path:
    jobs = state / "jobs"
    (jobs / "inbox").mkdir(parents=True)
    if audio_ok:
        write_audio(jobs / "audio" / "night-1.wav", voice_s=5.0, samplerate=8000)
    (state / "api_key").write_text("demo-key\n")
    (state / ".env").write_text(
        f"ENROLLER_API_URL={base_url}\nENROLLER_API_KEY_FILE={state / 'api_key'}\n"
        f"ENROLLER_QUEUE_DIR={jobs}\nENROLLER_MIN_AGE=0\n"
    )
    manifest = {"owner": "demo", "space": "main", "identity": "night-1", "audios": ["night-1.wav"]}
    (jobs / "inbox" / ".night.json.tmp").write_text(json.dumps(manifest))
    os.replace(jobs / "inbox" / ".night.json.tmp", jobs / "inbox" / "night.json")
    return jobs


async def run_cron_line(state: Path) -> tuple[int, str]:
    # cron's environment: a PATH and little else (no ENROLLER_*: .env must carry them)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(state), "LANG": "C.UTF-8"}
    done = await anyio.run_process(["/bin/sh", "-c", local_line(state)], env=env, check=False)
    return done.returncode, done.stdout.decode() + done.stderr.decode()


@pytest.mark.timeout(60)
async def test_a_clean_night_prints_nothing_and_writes_the_report(tmp_path: Path) -> None:
    async with running_emulator() as emu:
        jobs = prepare(tmp_path, emu.base_url, audio_ok=True)
        code, mail = await run_cron_line(tmp_path)
    assert (code, mail) == (0, "")
    (report,) = (jobs / "reports").glob("night-*.report.json")
    assert json.loads(report.read_text())["counts"]["enrolled"] == 1
    log = (tmp_path / "enroller.log").read_text().splitlines()
    assert log and all(json.loads(line)["event"] for line in log)  # JSON off a terminal


@pytest.mark.timeout(60)
async def test_a_night_with_failures_mails_exit_1(tmp_path: Path) -> None:
    async with running_emulator() as emu:
        jobs = prepare(tmp_path, emu.base_url, audio_ok=False)  # the audio file is missing
        code, mail = await run_cron_line(tmp_path)
    assert code == 0, "the `||` line ran, so cron sees success and mails its output"
    assert mail.startswith("enroller run --once exited 1 "), mail
    # Its one row cannot run: reported failed, with the files to act on (issue 30).
    assert list((jobs / "reports").glob("night-*.failures.csv"))
    assert list((jobs / "reports").glob("night-*.retry.json"))


@pytest.mark.timeout(60)
async def test_an_overlapping_run_skips_with_exit_75_and_touches_nothing(tmp_path: Path) -> None:
    async with running_emulator() as emu:
        jobs = prepare(tmp_path, emu.base_url, audio_ok=True)
        with (tmp_path / ".run.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the previous run, still going
            code, mail = await run_cron_line(tmp_path)
        stats = await emu.stats()
    assert code == 0 and mail.startswith("enroller run --once exited 75 "), mail
    assert (jobs / "inbox" / "night.json").exists()
    assert not (jobs / "reports").exists()
    assert stats["requests"]["total"] == 0


def test_the_readme_shows_this_very_line() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    job_line = next(
        line for line in CRON.read_text(encoding="utf-8").splitlines() if line.startswith("0 2 ")
    )
    assert job_line in readme.splitlines()
