"""Loading `Settings` from its sources, and a bad configuration told in plain lines.

Owns: `load_settings` (flags, environment, `.env`, defaults) and `InvalidSettings`: one line per
problem naming the setting, where it came from and the rule it breaks, never the value (it may
be a secret). The model itself is `worker.config.settings`.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError as SourceError

from worker.base.errors import WorkerMustStop
from worker.config.keyfile import KeyFileProblem
from worker.config.settings import ENV_PREFIX, Settings, env_name, flag_name

# ENROLLER_TEST_* variables are not settings: the test-only crash points
# (worker.base.crashpoints) and any other test switch.
TEST_PREFIX = ENV_PREFIX + "TEST_"


class InvalidSettings(WorkerMustStop):
    """A configuration that cannot be used: one line per problem, never a value.

    Not a ValueError on purpose: raised inside a validator, pydantic lets it through as it is.
    """

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


_SHOULD = re.compile(r"^(Input|String|Value|List) should ")


def _env_has(name: str) -> bool:
    wanted = env_name(name)
    return any(key.upper() == wanted for key in os.environ)  # env names are case-insensitive


def _source(name: str, flags: Mapping[str, Any]) -> str:
    if name in flags:
        return flag_name(name)
    if _env_has(name):
        return f"{env_name(name)} in the environment"
    return f"{env_name(name)} in .env"


def _problems(exc: ValidationError, flags: Mapping[str, Any]) -> Iterator[str]:
    for err in exc.errors(include_input=False, include_url=False, include_context=False):
        name = str(err["loc"][0]) if err["loc"] else ""
        rule = _SHOULD.sub("must ", err["msg"]).removeprefix("Value error, ")
        if name in Settings.model_fields:
            yield f"invalid setting {name} (from {_source(name, flags)}): {rule}"
        else:
            yield f"invalid settings: {rule}"


def load_settings(flags: Mapping[str, Any]) -> Settings:
    """Settings from `flags` (strongest), the environment, `.env` and defaults.

    Raises `InvalidSettings` with one line per problem: the setting, where it came from and
    the rule it breaks, never the value (it may be a secret).
    """
    try:
        return Settings(**flags)
    except KeyFileProblem as exc:
        source = _source("api_key_file", flags)
        raise InvalidSettings(
            [f"invalid setting api_key_file (from {source}): {exc.rule}"]
        ) from None
    except ValidationError as exc:
        raise InvalidSettings(list(_problems(exc, flags))) from None
    except SourceError as exc:  # pydantic-settings' own parse error; names field and source
        raise InvalidSettings([f"invalid settings: {exc}"]) from None
    except UnicodeDecodeError:
        raise InvalidSettings([".env: is not UTF-8 text"]) from None
    except OSError as exc:
        raise InvalidSettings([f".env: cannot be read ({exc.strerror})"]) from None


def describe_invalid(exc: ValidationError) -> list[str]:
    """Lines for a `Settings(...)` built in code (plugins) that failed validation."""
    return list(_problems(exc, {}))


def _dotenv_names(path: Path) -> list[str]:
    """The variable names a `.env` file sets (`NAME=…`, `export NAME=…`), best effort: a file
    that cannot be read is told by `load_settings`, not here."""
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    names = []
    for line in text.splitlines():
        line = line.strip().removeprefix("export ").strip()
        if line and not line.startswith("#") and "=" in line:
            names.append(line.split("=", 1)[0].strip())
    return names


def unknown_setting_warnings(environ: Mapping[str, str], dotenv: Path = Path(".env")) -> list[str]:
    """One line for each `ENROLLER_*` variable (environment or `.env`) that is no setting.

    pydantic-settings ignores them silently, so `ENROLLER_AUDIOROOT=/data` would leave the
    audio root at its default with no word said; the line names the closest setting.
    Variables read where they act (the test-only crash points) are not settings and not told.
    """
    known = {env_name(name) for name in Settings.model_fields}
    lines = []
    for source, names in (("the environment", list(environ)), (str(dotenv), _dotenv_names(dotenv))):
        for name in names:
            upper = name.upper()
            if not upper.startswith(ENV_PREFIX) or upper in known or upper.startswith(TEST_PREFIX):
                continue
            close = difflib.get_close_matches(upper, sorted(known), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            lines.append(f"{name} (in {source}) is not a setting and is ignored{hint}")
    return lines
