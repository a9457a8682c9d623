"""Checks shared by the tests of deployment files (compose, Kubernetes, systemd, cron, alerts).

A deployment file goes stale silently: a renamed flag or setting still parses as YAML. These
helpers hold each `enroller …` command to the real CLI parser and each `ENROLLER_*` /
`EMULATOR_*` variable to the real settings, so every such file is checked the same way.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from emulator.cli import build_parser as emulator_parser
from emulator.config import EmulatorOptions
from worker.cli import build_parser
from worker.config.settings import Settings


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


# --- monitoring: the PromQL of deploy/prometheus/alerts.yml and deploy/grafana/enroller.json ---

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "enroller.json"
PROMETHEUS_OWN = {"up"}  # recorded by Prometheus per target, not served by the worker
_SELECTOR = re.compile(r"\b([a-z_][a-z0-9_]*)\s*(\{[^}]*\})?\s*(?:\[|\)|$|\s|/|>|<|=|\*|\+|-)")
_MATCHER = re.compile(r'([a-z_][a-z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
_PROMQL_WORDS = {
    "sum", "max", "min", "count", "avg", "by", "without", "and", "or", "unless", "on",
    "rate", "increase", "delta", "absent", "absent_over_time", "humanize", "bool",
}  # fmt: skip


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_panels() -> list[dict[str, Any]]:
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [p for p in doc["panels"] if p["type"] != "row"]


def monitoring_expressions() -> dict[str, str]:
    """where → PromQL, for every alert rule and every dashboard query."""
    out = {f"alerts.yml {r['alert']}": str(r["expr"]) for r in alert_rules()}
    for panel in dashboard_panels():
        for target in panel["targets"]:
            out[f"enroller.json {panel['title']} {target['refId']}"] = target["expr"]
    return out


def selectors(expr: str) -> list[tuple[str, dict[str, tuple[str, str]]]]:
    """(metric, {label: (operator, value)}) of each series selector in `expr`."""
    expr = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", " ", expr)  # grouping labels
    found = []
    for match in _SELECTOR.finditer(expr + " "):
        name, braces = match.group(1), match.group(2) or ""
        if name in _PROMQL_WORDS or name.startswith("__") or re.fullmatch(r"\d+[smhd]?", name):
            continue
        found.append((name, {k: (op, v) for k, op, v in _MATCHER.findall(braces)}))
    return found
