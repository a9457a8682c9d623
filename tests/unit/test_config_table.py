"""The README's settings table is generated from `Settings`, and this test keeps them equal."""

from __future__ import annotations

import json
import re
from argparse import SUPPRESS
from pathlib import Path

import pytest

from worker.cli import build_parser, main
from worker.config.settings import Settings
from worker.config.table import settings_markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"
START = "<!-- settings-table:start (generated: enroller config --markdown) -->"
END = "<!-- settings-table:end -->"


def readme_table() -> str:
    text = README.read_text(encoding="utf-8")
    assert START in text and END in text, "README.md lost the settings table markers"
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def test_readme_table_is_what_settings_says() -> None:
    assert readme_table() == settings_markdown_table(), (
        "README.md settings table is out of date: replace it with `enroller config --markdown`"
    )


def table_rows() -> list[str]:
    return [r for r in settings_markdown_table().splitlines()[2:] if r.startswith("| `")]


def test_every_setting_has_one_row_with_its_env_var_and_a_meaning() -> None:
    rows = [r for r in settings_markdown_table().splitlines()[2:] if r.startswith("| `")]
    names = [re.match(r"\| `(\w+)`", r).group(1) for r in rows]  # type: ignore[union-attr]
    assert names == list(Settings.model_fields)
    for name, row in zip(names, rows, strict=True):
        assert f"`ENROLLER_{name.upper()}`" in row
        assert Settings.model_fields[name].description, f"{name} has no description"


def test_every_flag_in_the_table_is_accepted_by_the_cli() -> None:
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    options = {
        opt for action in run._actions if action.help != SUPPRESS for opt in action.option_strings
    }
    for row in settings_markdown_table().splitlines()[2:]:
        cell = row.split("|")[3]
        flags = re.findall(r"--[\w-]+", cell)
        if cell.strip().startswith("refused"):
            continue  # a secret; its row is checked below
        assert flags and set(flags) <= options, row


def test_secrets_are_marked_env_or_file_only_and_have_no_visible_flag() -> None:
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    visible = {
        opt for action in run._actions if action.help != SUPPRESS for opt in action.option_strings
    }
    rows = {r.split("|")[1].strip(" `"): r.split("|")[3].strip() for r in table_rows()}
    assert rows["api_key"] == "refused (secret): env, .env or `--api-key-file`"
    assert rows["api_password"] == "refused (secret): env or .env"
    assert not {"--api-key", "--api-password"} & visible


def test_config_markdown_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--markdown"]) == 0
    assert capsys.readouterr().out == settings_markdown_table()


def test_config_masks_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ENROLLER_API_KEY", "k-very-secret")
    monkeypatch.setenv("ENROLLER_API_PASSWORD", "pw-secret")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "k-very-secret" not in out and "pw-secret" not in out
    assert json.loads(out)["api_key"] == "********"
