"""The house rules on imports (design.md §2): the worker's packages import one way only, along
the table below; no two modules of worker/ or emulator/ import each other (directly or round a
longer circle); worker/ never imports emulator/, and the emulator takes only the decoder and
the formats of the worker (its demo, which drives the worker as a user would, aside).

Read with the `ast` module, not by importing: every import counts, the lazy ones inside a
function and the `TYPE_CHECKING` ones too, because a circle or a wrong-way edge a reader must
hold in their head is there even when Python happens to survive it. Each checker is itself
tested on a small tree that breaks its rule, so that this guard cannot pass by reading nothing.
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


# The layers, top to bottom. A package may import the packages its row lists and nothing else;
# the rows below it are spelled out, so a new edge is a decision made here, not an accident.
#   row 8   cli, main (worker/__main__.py)
#   row 7   service · commands           (never each other)
#   row 6   ops
#   row 5   job
#   row 4   enrollment · fleet           (never each other)
#   row 3   api
#   row 2   manifest · queue · journal   (never each other)
#   row 1   audio · config · objects     (never each other)
#   row 0   base
ROW_0 = {"base"}
ROW_1 = ROW_0 | {"audio", "config", "objects"}
BELOW_API = ROW_1 | {"manifest", "queue", "journal"}
ALLOWED: dict[str, set[str]] = {
    "base": set(),
    "audio": ROW_0,
    "config": ROW_0,
    # S3 (issue 29): the client, its reasons and the download budget; it takes plain values,
    # never Settings, so the manifest (s3:// addresses) and the job (downloads) can use it.
    "objects": ROW_0,
    "manifest": ROW_1,
    "queue": ROW_1,
    "journal": ROW_1,
    # The client: the audio files it streams and the settings it is built from; never the
    # queue (the send gate is handed to it), the journal or a manifest.
    "api": ROW_0 | {"audio", "config"},
    "enrollment": BELOW_API | {"api"},
    "fleet": ROW_1 | {"api"},
    "job": BELOW_API | {"api", "enrollment", "fleet"},
    "ops": BELOW_API | {"api", "enrollment", "fleet", "job"},
    "service": BELOW_API | {"api", "enrollment", "fleet", "job", "ops"},
    "commands": BELOW_API | {"api", "enrollment", "fleet", "job", "ops"},
    "cli": BELOW_API | {"api", "enrollment", "fleet", "job", "ops", "service", "commands"},
    "main": {"cli"},
    "root": set(),  # worker/__init__.py: the version, nothing else
}
# What the emulator may take of the worker: the decoder and the formats it is measured against.
EMULATOR_MAY_IMPORT = {"worker.audio.decode", "worker.audio.formats"}
# `enroller demo` starts the emulator and then the worker in one process, as a user would.
DEMO_MAY_IMPORT = EMULATOR_MAY_IMPORT | {
    "worker.api.client",
    "worker.base.exitcodes",
    "worker.base.log",
    "worker.config.settings",
    "worker.service",
}


def package_of(module: str) -> str:
    """`worker.job.run` → `job`; `worker.cli` → `cli`; `worker.__main__` → `main`."""
    parts = module.split(".")
    if len(parts) == 1:
        return "root"
    if parts[1] == "__main__":
        return "main"
    return parts[1]


def wrong_way_edges(
    graph: dict[str, set[str]], allowed: dict[str, set[str]] = ALLOWED
) -> list[str]:
    """`a -> b` for every import of a worker module that the table does not allow; a package
    the table does not know is an error of its own."""
    bad = []
    for module, targets in graph.items():
        if not module.startswith("worker"):
            continue
        source = package_of(module)
        if source not in allowed:
            bad.append(f"{module}: package {source!r} is not in the table")
            continue
        for target in targets:
            if not target.startswith("worker"):
                continue
            dest = package_of(target)
            if dest != source and dest not in allowed[source]:
                bad.append(f"{module} -> {target}")
    return sorted(bad)


def emulator_imports_of_worker(graph: dict[str, set[str]]) -> list[str]:
    """`module -> worker...` for every emulator import of the worker outside what it may take."""
    bad = []
    for module, targets in graph.items():
        if not module.startswith("emulator"):
            continue
        may = DEMO_MAY_IMPORT if module == "emulator.demo" else EMULATOR_MAY_IMPORT
        bad.extend(f"{module} -> {t}" for t in targets if t.startswith("worker") and t not in may)
    return sorted(bad)


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


def test_the_table_checker_finds_a_wrong_way_edge_an_unknown_package_and_a_same_row_edge(
    tmp_path: Path,
) -> None:
    write_tree(
        tmp_path,
        {
            "worker/__init__.py": "",
            "worker/base/__init__.py": "",
            "worker/base/text.py": "",
            "worker/journal/__init__.py": "",
            "worker/journal/records.py": "from worker.base.text import x\n",
            "worker/enrollment/__init__.py": "",
            "worker/enrollment/view.py": "from worker.journal.records import Outcome\n",
            "worker/queue/__init__.py": "",
            "worker/queue/lease.py": "def f():\n    from worker.journal import records\n",
            "worker/api/__init__.py": "",
            "worker/api/governor.py": "from worker.queue.lease import guard\n",
            "worker/base/log.py": "from worker.enrollment.view import View\n",
            "worker/attic/__init__.py": "",
            "worker/attic/old.py": "",
            "emulator/__init__.py": "",
            "emulator/app.py": "from worker.base.text import x\nfrom worker.audio import decode\n",
        },
    )
    graph = import_graph(tmp_path)
    assert wrong_way_edges(graph) == [
        "worker.api.governor -> worker.queue.lease",
        "worker.attic.old: package 'attic' is not in the table",
        "worker.attic: package 'attic' is not in the table",
        "worker.base.log -> worker.enrollment.view",
        "worker.queue.lease -> worker.journal.records",
    ]
    assert emulator_imports_of_worker(graph) == ["emulator.app -> worker.base.text"]


def test_every_package_of_the_worker_is_in_the_table() -> None:
    packages = {package_of(m) for m in module_files(ROOT, ("worker",))}
    assert packages == set(ALLOWED)


def test_no_package_imports_against_the_table() -> None:
    graph = import_graph(ROOT)
    assert wrong_way_edges(graph) == []


def test_the_emulator_takes_only_the_decoder_and_the_formats() -> None:
    assert emulator_imports_of_worker(import_graph(ROOT)) == []


def test_worker_top_level_holds_only_the_entry_points() -> None:
    top = sorted(p.name for p in (ROOT / "worker").glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "cli.py", "service.py"]
