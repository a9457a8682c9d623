"""Cells that a spreadsheet shows as text, never runs as a formula (CSV injection, CWE-1236).

Owns: the one rule every CSV the worker writes applies to each cell. Reports echo manifest
text that the operator did not write (exports from other systems), and a spreadsheet runs a
cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return as a formula. OWASP's
advice is a leading `'`: spreadsheets show the rest as text and hide the quote. Only for
spreadsheets: the JSON report and the retry manifest keep every value exactly.
"""

from __future__ import annotations

from collections.abc import Iterable

# The characters that start a formula (or, for tab and CR, that some importers strip before one).
FORMULA_STARTS = frozenset("=+-@\t\r")


def spreadsheet_safe(cell: str) -> str:
    """`cell`, with a leading `'` when a spreadsheet would otherwise run it as a formula."""
    return "'" + cell if cell[:1] in FORMULA_STARTS else cell


def spreadsheet_safe_row(row: Iterable[str]) -> list[str]:
    """Every cell of one CSV row made spreadsheet-safe."""
    return [spreadsheet_safe(cell) for cell in row]
