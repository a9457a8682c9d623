"""Checks shared by the tests of deployment files (compose, Kubernetes, systemd, cron lines).

A deployment file goes stale silently: a renamed flag or setting still parses as YAML. These
helpers hold each `enroller …` command to the real CLI parser and each `ENROLLER_*` /
`EMULATOR_*` variable to the real settings, so every such file is checked the same way.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable

from emulator.cli import build_parser as emulator_parser
from emulator.config import EmulatorOptions
from worker.cli import build_parser
from worker.settings import Settings


def check_enroller_command(argv: list[str]) -> None:
    """Fail unless `argv` is `enroller SUBCOMMAND …` that the real parsers accept."""
    assert argv[0] == "enroller", argv
    if argv[1] == "emulator":
        emulator_parser().parse_args(argv[2:])  # exits (fails the test) on unknown flags
    else:
        build_parser().parse_args(argv[1:])


def check_variable(name: str, where: str) -> None:
    """Fail unless `name` is an ENROLLER_* setting or an EMULATOR_* emulator option."""
    if name.startswith("ENROLLER_"):
        field = name.removeprefix("ENROLLER_").lower()
        assert field in Settings.model_fields, f"{where}: {name} is not a setting"
    elif name.startswith("EMULATOR_"):
        field = name.removeprefix("EMULATOR_").lower()
        assert field in EmulatorOptions.model_fields, f"{where}: {name} is not an option"
    else:
        raise AssertionError(f"{where}: {name} is neither ENROLLER_* nor EMULATOR_*")


_CRON_PREFIX = re.compile(r"^\s*(?:[\d*/,-]+\s+){5}[a-z_][a-z0-9_-]*\s+")
_SHELL_OPERATOR = re.compile(r"^(?:[;&|<>]|\d+>)")  # ; && || | & > >> < 2>&1 2>file


def enroller_commands_in_shell(text: str) -> list[list[str]]:
    """Every `enroller …` command in shell-like lines (crontab, ExecStart=, README blocks).

    A command ends at a shell operator (`;`, `&&`, `|`, `>`, …); what precedes `enroller` on
    the line (a path, `flock …`, `docker compose exec worker`, a cron.d schedule and user) is
    not part of it.
    """
    found: list[list[str]] = []
    for line in text.splitlines():
        line = _CRON_PREFIX.sub("", line)  # /etc/cron.d: 5 schedule fields, then the user
        words = shlex.split(line, comments=True)
        for i, word in enumerate(words):
            if word == "enroller" or word.endswith("/enroller"):
                argv = ["enroller"]
                for part in words[i + 1 :]:
                    if _SHELL_OPERATOR.match(part):
                        break
                    argv.append(part)
                if len(argv) > 1:
                    found.append(argv)
    return found


def variables_in(names: Iterable[str]) -> list[str]:
    """The ENROLLER_* / EMULATOR_* names among `names` (others are not ours to check)."""
    return [n for n in names if n.startswith(("ENROLLER_", "EMULATOR_"))]
