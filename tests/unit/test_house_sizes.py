"""The house's sizes (issue 26): no module of worker/ or emulator/ over 400 lines, no function
over 60. A module or a function past these sizes holds more than one concern; split it where
the concerns part, not by cutting it in the middle.

Read with the `ast` module; the checker is tested on a small tree that breaks both rules, so
that this guard cannot pass by reading nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def oversized(root: Path, packages: tuple[str, ...] = ("worker", "emulator")) -> list[str]:
    """`path: N lines` for each module over the bound, `path:function: N lines` for each
    function (or method, nested ones too) over its bound."""
    found = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            name = path.relative_to(root).as_posix()
            lines = len(text.splitlines())
            if lines > MAX_MODULE_LINES:
                found.append(f"{name}: {lines} lines")
            for node in ast.walk(ast.parse(text, filename=name)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        found.append(f"{name}:{node.name}: {length} lines")
    return found


def test_the_checker_finds_a_long_module_and_a_long_function(tmp_path: Path) -> None:
    (tmp_path / "worker").mkdir()
    (tmp_path / "worker" / "big.py").write_text("x = 1\n" * 401, encoding="utf-8")
    body = "".join(f"    y{i} = {i}\n" for i in range(60))
    (tmp_path / "worker" / "f.py").write_text(
        f"def ok():\n{body[: body.rindex('    y59')]}\n\nclass C:\n    async def long(self):\n"
        + body.replace("    ", "        "),
        encoding="utf-8",
    )
    assert oversized(tmp_path, ("worker",)) == [
        "worker/big.py: 401 lines",
        "worker/f.py:long: 61 lines",
    ]


def test_no_module_over_400_lines_and_no_function_over_60() -> None:
    assert oversized(ROOT) == []
