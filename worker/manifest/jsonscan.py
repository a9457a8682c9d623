"""Reading a large JSON job manifest as a stream (ijson, on yajl's C parser), never whole.

Owns: the first pass over a JSON job file (its top-level keys and scalar defaults, wherever
they stand in the file, whether `enrollments` is a list and how many items it has, and the
syntax problems that spoil the file) and the second pass that yields the enrollments one at a
time. `json.loads` of a 1 000 000-enrollment file holds every enrollment at once (~400 bytes
each); this holds one. It knows nothing of what the keys mean: `worker.manifest` checks them.

Three guards yajl lacks: nesting beyond `MAX_DEPTH` stops the scan (a `[` × 100 000 file
would otherwise build ever longer event prefixes), a lone surrogate escape (`\\ud800`), which
yajl would silently turn into `?`, is refused, and a UTF-8 BOM is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import ijson

from worker.base.errors import JobMustFail

MAX_DEPTH = 64
BOM = b"\xef\xbb\xbf"
_SCALARS = frozenset({"null", "boolean", "integer", "double", "number", "string"})
_STARTS = frozenset({"start_map", "start_array"})
# A high surrogate escape not followed by a low one, or a low one not preceded by a high one.
# (An escaped backslash before "ud800" reads as one too: a false refusal, never a miss.)
_LONE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
_CHUNK = 1 << 20
# The top-level lists whose items are counted and streamed: a job's, and a Voice ID manifest's
# (worker.manifest.voiceid).
LIST_KEYS = ("enrollments", "SpeakerEnrollmentRequests")
# Small top-level objects whose scalar members the first pass keeps, as "Object.member".
MEMBERS_KEPT = ("EnrollmentConfig",)


class JsonScanError(JobMustFail):
    """The file is not JSON this reader accepts; the message is the reason, for a person."""


@dataclass
class JobScan:
    """What the first pass learned of a JSON document."""

    top_level: str = "object"  # "object", or the kind of value the document is instead
    keys: list[str] = field(default_factory=list)  # top-level keys, in file order
    scalars: dict[str, Any] = field(default_factory=dict)  # top-level key -> scalar value
    enrollments: str | None = None  # kind of the `enrollments` value: "list", "object", …
    count: int = 0  # items of the `enrollments` list
    kinds: dict[str, str] = field(default_factory=dict)  # top-level key -> "object", "list", …
    lists: dict[str, str] = field(default_factory=dict)  # LIST_KEYS key -> kind of its value
    counts: dict[str, int] = field(default_factory=dict)  # LIST_KEYS key -> items, if a list
    # MEMBERS_KEPT objects: "Object.member" -> its value (scalar), or its kind ("object"…)
    members: dict[str, Any] = field(default_factory=dict)


def _skip_bom(fh: IO[bytes]) -> None:
    start = fh.tell()
    if fh.read(3) != BOM:
        fh.seek(start)


def _check_surrogates(fh: IO[bytes]) -> None:
    """Refuse a lone surrogate escape anywhere in the file (chunked, with an overlap)."""
    start = fh.tell()
    tail = b""
    while chunk := fh.read(_CHUNK):
        window = tail + chunk
        match = _LONE.search(window)
        if match is not None:
            raise JsonScanError(
                f"not valid Unicode text: a lone surrogate escape {match.group().decode()}"
            )
        tail = window[-12:]
    fh.seek(start)


def _kind(event: str) -> str:
    return {"start_map": "object", "start_array": "list"}.get(event, event)


def scan_job(fh: IO[bytes]) -> JobScan:
    """The first pass (see the module docstring); raises `JsonScanError` for a bad file."""
    _skip_bom(fh)
    _check_surrogates(fh)
    scan = JobScan()
    depth = 0
    try:
        for prefix, event, value in ijson.parse(fh, use_float=True):
            if event in _STARTS:
                depth += 1
                if depth > MAX_DEPTH:
                    raise JsonScanError(f"not valid JSON: nested deeper than {MAX_DEPTH}")
            elif event in ("end_map", "end_array"):
                depth -= 1
            if prefix == "" and depth <= 1:
                if event in _SCALARS or event == "start_array":
                    scan.top_level = _kind(event)
                    if event != "start_map":
                        return scan
                elif event == "map_key":
                    scan.keys.append(value)
            else:
                _note(scan, prefix, event, value, depth)
    except ijson.JSONError as exc:
        raise JsonScanError(f"not valid JSON: {_yajl_message(exc)}") from None
    return scan


def _note(scan: JobScan, prefix: str, event: str, value: Any, depth: int) -> None:
    """One event below the top level: a value's kind, a list's item, a kept member."""
    top, _, rest = prefix.partition(".")
    is_value = event in _STARTS or event in _SCALARS
    if not rest and is_value and depth <= 2 and (depth == 1 or event in _STARTS):
        kind = _kind(event) if event in _STARTS else event
        scan.kinds[top] = kind
        if top in LIST_KEYS:
            scan.lists[top] = kind
        if top == "enrollments":
            scan.enrollments = kind
        elif event in _SCALARS and depth == 1:
            scan.scalars[top] = value
    elif rest == "item" and top in LIST_KEYS and is_value and depth <= 3:
        scan.counts[top] = scan.counts.get(top, 0) + 1
        if top == "enrollments":
            scan.count += 1
    elif top in MEMBERS_KEPT and rest and "." not in rest and is_value:
        if event in _SCALARS and depth == 2:
            scan.members[prefix] = value
        elif event in _STARTS and depth == 3:
            scan.members[prefix] = _kind(event)


def iter_enrollments(fh: IO[bytes], key: str = "enrollments") -> Iterator[Any]:
    """The second pass: each item of the top-level list `key`, one at a time."""
    _skip_bom(fh)
    try:
        yield from ijson.items(fh, f"{key}.item", use_float=True)
    except ijson.JSONError as exc:  # the first pass read the same bytes; only a changed file
        raise JsonScanError(f"not valid JSON: {_yajl_message(exc)}") from None


def _yajl_message(exc: BaseException) -> str:
    text = str(exc)
    if text.startswith("b'") or text.startswith('b"'):
        text = text[2:-1].encode().decode("unicode_escape", "replace")
    return " ".join(text.split("\n")[0].split()) or type(exc).__name__
