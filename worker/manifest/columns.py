"""The columns of a CSV manifest: which exist, how a header names them, what it must have.

Owns: the column names (matched case-insensitively, ignoring `_`, `-` and spaces, so
`min_audios` is `minAudios`) and the header's problems that spoil the whole file (a required
column missing, one named twice, and which delimiter the header uses: `,`, `;` or a tab). Pure.
"""

from __future__ import annotations

import csv
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


# Spreadsheets write CSV with the list separator of the locale: `;` in most of Europe, tabs in
# "Unicode text" exports.
DELIMITERS = (",", ";", "\t")


def header_delimiter(line: str) -> str:
    """The delimiter under which `line` (the header) names the required columns; "," when
    none does (the header's problems are then told with commas, as the README writes them)."""
    for delimiter in DELIMITERS:
        cells = next(csv.reader([line], delimiter=delimiter), [])
        names = {_CANONICAL.get(_norm_column(cell)) for cell in cells}
        if all(c in names for c in CSV_REQUIRED):
            return delimiter
    return ","


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
        listed = ", ".join(f'"{c}"' for c in missing)
        found = ", ".join(f'"{c.strip()}"' for c in cells if c.strip()) or "none"
        problems.append(
            Problem(
                file=file,
                place=f"line {line}",
                reason=f"missing column{'s' if len(missing) > 1 else ''} {listed}; the header "
                f"has {found} (required: {', '.join(CSV_REQUIRED)}; optional: "
                f"{', '.join(CSV_OPTIONAL)}; separated by commas, semicolons or tabs)",
            )
        )
    return problems
