"""The rules of single values: handles, aliases, models, minAudios, booleans, audio paths.

Owns: what the API contract allows for each value a manifest names (contract §1, §3), audio path
containment (lexical: `..` and absolute paths; symlinks are followed at preflight by
`worker.audio.inspect`), and how a value is shown to a person in a message. Pure functions of a
value: each returns the value as the engine wants it, or the reason it cannot be one, and never
raises for bad input.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from worker.base.text import has_lone_surrogate, safe_text
from worker.objects.uri import is_s3, object_path, parse_s3_uri

HANDLE_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
HANDLE_MAX = 50
ALIAS_MAX = 100
MIN_AUDIOS_MIN, MIN_AUDIOS_MAX = 1, 20
DEFAULT_VOICEPRINT = "main"
NOT_UNICODE = "is not valid Unicode text (a lone surrogate, e.g. an escape \\ud800 with no pair)"
_VALUE_SHOWN_MAX = 60
_TRUE = frozenset({"true", "yes", "y", "1"})
_FALSE = frozenset({"false", "no", "n", "0"})


def show(value: Any) -> str:
    """A value as a person should see it in a message: strings quoted, long ones shortened."""
    if isinstance(value, str):
        text = value if len(value) <= _VALUE_SHOWN_MAX else value[: _VALUE_SHOWN_MAX - 1] + "…"
        return safe_text(json.dumps(text, ensure_ascii=False))
    try:
        text = safe_text(json.dumps(value, ensure_ascii=False))
    except (TypeError, ValueError):
        text = safe_text(repr(value))
    return text if len(text) <= _VALUE_SHOWN_MAX else text[: _VALUE_SHOWN_MAX - 1] + "…"


def handle_problem(value: str) -> str | None:
    """Why `value` is not a valid handle (contract §1), or None."""
    if not value:
        return "must not be empty"
    if len(value) > HANDLE_MAX:
        return f"is {len(value)} characters; handles are at most {HANDLE_MAX}"
    if HANDLE_RE.match(value):
        return None
    if re.fullmatch(r"[a-z0-9-]+", value):
        return "hyphens may only join letters or digits (none at the ends, never two in a row)"
    return "handles are lowercase letters, digits and hyphens"


def alias_problem(value: str) -> str | None:
    if has_lone_surrogate(value):
        return NOT_UNICODE
    if not value:
        return f"must not be empty (aliases are 1–{ALIAS_MAX} characters; omit it or use null)"
    if len(value) > ALIAS_MAX:
        return f"is {len(value)} characters; aliases are 1–{ALIAS_MAX} characters"
    return None


def unknown_reason(known: Iterable[str]) -> str:
    return "unknown field; known fields are " + ", ".join(sorted(known)) + ' (and "comment")'


def lines_text(lines: Sequence[int]) -> str:
    """`line 4`, `lines 4-6` (consecutive) or `lines 4, 9, 12`."""
    if len(lines) == 1:
        return f"line {lines[0]}"
    if list(lines) == list(range(lines[0], lines[0] + len(lines))):
        return f"lines {lines[0]}-{lines[-1]}"
    return "lines " + ", ".join(str(n) for n in lines)


def audio_path(raw: str, root: Path) -> tuple[Path, str] | str:
    """(absolute path, name relative to root) or the reason the path is refused. Lexical only.

    `s3://bucket/key` is an object: its stand-in path (`worker.objects.uri.object_path`) and
    its address as the name; the job downloads it before preflight reads it.
    """
    if not raw.strip():
        return "must not be empty"
    if "\x00" in raw:
        return "contains a NUL character"
    if has_lone_surrogate(raw):
        return NOT_UNICODE
    if is_s3(raw):
        uri = parse_s3_uri(raw)
        return uri if isinstance(uri, str) else (object_path(uri), str(uri))
    root_n = os.path.normpath(root)
    absolute = os.path.isabs(raw)
    full = os.path.normpath(raw if absolute else os.path.join(root_n, raw))
    if not lexically_inside(full, root_n):
        where = "is outside the audio root" if absolute else "leads outside the audio root"
        return f"{where} ({full} is not under {root_n}: ENROLLER_AUDIO_ROOT)"
    if full == root_n:
        return "is the audio root itself, not a file"
    return Path(full), relative_name(full, root_n)


def lexically_inside(full: str, root: str) -> bool:
    """Whether the normalised path `full` lies in (or is) the normalised `root`, by its text
    alone (no symlink is followed: `worker.audio.inspect.resolves_inside` asks the disk)."""
    try:
        return os.path.commonpath([full, root]) == root
    except ValueError:
        return False


def relative_name(full: str, root: str) -> str:
    """`full` relative to `root`, in POSIX form, as people see audio names."""
    return PurePosixPath(*Path(os.path.relpath(full, root)).parts).as_posix()


def channel_value(value: Any) -> int | str | None:
    """A channel number (0-based), None when not given, or the reason it is refused."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return "channel must be a whole number from 0 (the first channel)"
    return value


def model_text(value: Any) -> str | tuple[Any, str]:
    """The model as `handle/version`, or (value shown, reason). Accepts both vendor forms."""
    if isinstance(value, Mapping):
        keys = set(value)
        if keys != {"handle", "version"}:
            return value, 'must be "handle/version" or {"handle": …, "version": …}'
        handle, version = value["handle"], value["version"]
        if not isinstance(handle, str) or not isinstance(version, str):
            return value, "handle and version must be text"
        text = f"{handle}/{version}"
    elif isinstance(value, str):
        text = value
    else:
        return value, 'must be "handle/version" or {"handle": …, "version": …}'
    parts = text.split("/")
    if len(parts) != 2 or not all(HANDLE_RE.match(p) for p in parts):
        if len(parts) == 2 and all(HANDLE_RE.match(p.lower()) for p in parts):
            # The API's handles are lowercase: refuse as a matter of case, with the fix, rather
            # than guess that "Phone/V1" means phone/v1 in a job's identity keys.
            return value, f'model handles are lowercase: write "{text.lower()}"'
        return value, 'must be "handle/version", e.g. "phone/v1"'
    return text


def int_value(value: Any) -> int | str:
    if isinstance(value, bool):
        return "must be a whole number"
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    return "must be a whole number"


def min_audios(value: Any) -> int | str:
    """minAudios as an int in 1–20 (contract §3), or the reason it is not."""
    n = int_value(value)
    if isinstance(n, int) and not MIN_AUDIOS_MIN <= n <= MIN_AUDIOS_MAX:
        return f"must be between {MIN_AUDIOS_MIN} and {MIN_AUDIOS_MAX}"
    return n


def bool_value(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    return None
