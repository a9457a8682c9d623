"""The house rules on imports: no two modules of worker/ or emulator/ import each other (directly
or round a longer circle), and worker/ never imports emulator/ (design.md §2).

Read with the `ast` module, not by importing: every import counts, the lazy ones inside a
function and the `TYPE_CHECKING` ones too, because a circle a reader must hold in their head is
a circle even when Python happens to survive it. The checker is itself tested on a small tree
with a circle in it, so that this guard cannot pass by reading nothing.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("worker", "emulator")


def module_files(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name → file, for every .py file of the given top-level packages."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imported_names(tree: ast.Module, module: str, is_package: bool) -> Iterator[str]:
    """Every dotted name an import statement of the module names (absolute): `import a.b`
    names `a.b`; `from a import b` names `a.b` when that is a module, else `a` (see below)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                here = module.split(".") if is_package else module.split(".")[:-1]
                base_parts = here[: len(here) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            yield from (f"{base}\0{alias.name}" for alias in node.names)


def _resolve(name: str, files: dict[str, Path]) -> str:
    """`base\0name` → `base.name` if that is a module of the tree, else `base`."""
    base, _, member = name.partition("\0")
    if member and f"{base}.{member}" in files:
        return f"{base}.{member}"
    return base


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Module → the modules of the same tree it imports."""
    files = module_files(root, packages)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        names = _imported_names(tree, module, path.name == "__init__.py")
        graph[module] = {t for t in (_resolve(n, files) for n in names) if t in files} - {module}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def worker_imports_of_emulator(root: Path) -> list[str]:
    """`module -> emulator...` for every worker module that names the emulator in an import,
    even a module of it that does not exist."""
    files = module_files(root, PACKAGES)
    bad = []
    for module, path in module_files(root, ("worker",)).items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name in _imported_names(tree, module, path.name == "__init__.py"):
            target = _resolve(name, files)
            if target == "emulator" or target.startswith("emulator."):
                bad.append(f"{module} -> {target}")
    return sorted(set(bad))


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_checker_finds_a_circle_a_lazy_import_and_a_worker_to_emulator_import(
    tmp_path: Path,
) -> None:
    write_tree(
        tmp_path,
        {
            "worker/__init__.py": "",
            "worker/a.py": "from worker.b import thing\n",
            "worker/b.py": "def f():\n    from worker import c\n",
            "worker/c.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from worker.a import x\n"
            ),
            "worker/d.py": "import emulator.app\nfrom . import a\nfrom emulator import cli\n",
            "worker/sub/__init__.py": "from .e import y\n",
            "worker/sub/e.py": "from worker.sub import y\n",
            "emulator/__init__.py": "",
            "emulator/app.py": "from worker.a import z\n",
        },
    )
    graph = import_graph(tmp_path)
    assert graph["worker.d"] == {"emulator", "emulator.app", "worker.a"}
    assert circles(graph) == [["worker.a", "worker.b", "worker.c"], ["worker.sub", "worker.sub.e"]]
    assert worker_imports_of_emulator(tmp_path) == [
        "worker.d -> emulator",
        "worker.d -> emulator.app",
    ]


def test_no_import_circle_in_worker_or_emulator() -> None:
    graph = import_graph(ROOT)
    assert len(graph) > 50, "the checker read too few modules to mean anything"
    assert circles(graph) == []


def test_worker_never_imports_the_emulator() -> None:
    assert worker_imports_of_emulator(ROOT) == []
