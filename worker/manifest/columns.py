"""The columns of a CSV manifest: which exist, how a header names them, what it must have.

Owns: the column names (matched case-insensitively, ignoring `_`, `-` and spaces, so
`min_audios` is `minAudios`) and the header's problems that spoil the whole file (a required
column missing, one named twice, a header separated by `;` or tabs). Pure.
"""

from __future__ import annotations

import re

from worker.manifest.models import Problem

# CSV columns, matched case-insensitively and ignoring `_`, `-` and spaces (`min_audios`).
CSV_REQUIRED = ("identity", "audio")
CSV_OPTIONAL = (
    *("voiceprint", "model", "minAudios", "alias", "owner", "space", "createIdentity"),
    *("existing", "retire"),  # what becomes of a customer already enrolled (policy.py)
    "channel",  # the customer's channel of a stereo recording, 0-based (worker.audio.derive)
)


def _norm_column(name: str) -> str:
    return re.sub(r"[\s_-]", "", name).lower()


_CANONICAL = {_norm_column(c): c for c in (*CSV_REQUIRED, *CSV_OPTIONAL)}


def header_problems(
    cells: list[str], columns: dict[str, int], file: str, line: int
) -> list[Problem]:
    """Map the header's known columns into `columns`; problems that spoil the whole file."""
    problems: list[Problem] = []
    for i, cell in enumerate(cells):
        name = _CANONICAL.get(_norm_column(cell))
        if name is None:
            continue
        if name in columns:
            problems.append(
                Problem(
                    file=file,
                    place=f"line {line}",
                    field=cell.strip(),
                    reason=f"column appears twice (also column {columns[name] + 1})",
                )
            )
            continue
        columns[name] = i
    missing = [c for c in CSV_REQUIRED if c not in columns]
    if missing:
        hint = ""
        if len(cells) == 1 and (";" in cells[0] or "\t" in cells[0]):
            hint = "; the header looks separated by ';' or tabs: use commas"
        listed = ", ".join(f'"{c}"' for c in missing)
        problems.append(
            Problem(
                file=file,
                place=f"line {line}",
                reason=f"missing column{'s' if len(missing) > 1 else ''} {listed} "
                f"(required: {', '.join(CSV_REQUIRED)}; optional: {', '.join(CSV_OPTIONAL)})"
                + hint,
            )
        )
    return problems
