"""Issue 30 point 7: getting started needs nothing outside the repository.

No tracked file points to documents that are not in it (the authors' folder beside it is not
the users'), every `docs/*.md` named exists, the README's CSV table lists every column the
parser reads, and `make demo` installs the worker without the test tools, from a pyproject that
gives setuptools no deprecation to print.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

from worker.manifest.columns import CSV_OPTIONAL, CSV_REQUIRED

ROOT = Path(__file__).resolve().parents[2]
# The CI script finds the authors' tools beside the repository; it is not read by users.
OUTSIDE_ALLOWED = {".ci/run"}
OUTSIDE = "../" + "shared"  # spelled apart: this file must not match itself


def tracked_text_files() -> list[Path]:
    names = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30
    ).stdout.splitlines()
    files = []
    for name in names:
        path = ROOT / name
        if name in OUTSIDE_ALLOWED or not path.is_file():
            continue
        try:
            path.read_text("utf-8")
        except UnicodeDecodeError:
            continue
        files.append(path)
    return files


def test_no_file_points_outside_the_repository() -> None:
    pointing = [str(p.relative_to(ROOT)) for p in tracked_text_files() if OUTSIDE in p.read_text()]
    assert pointing == []


def test_every_doc_named_exists() -> None:
    named = set()
    for path in tracked_text_files():
        named.update(re.findall(r"docs/[\w.-]+\.md", path.read_text()))
    assert named and all((ROOT / doc).is_file() for doc in named), sorted(named)


def test_the_readme_lists_every_csv_column() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| (yes|no) \|", readme, flags=re.MULTILINE)
    assert dict(rows) == {
        **{c: "yes" for c in CSV_REQUIRED},
        **{c: "no" for c in CSV_OPTIONAL},
    }


def test_make_demo_installs_without_the_test_extra_and_pyproject_has_no_deprecated_license() -> (
    None
):
    makefile = (ROOT / "Makefile").read_text()
    demo = re.search(r"^demo: (\S+)\n", makefile, flags=re.MULTILINE)
    assert demo is not None
    stamp_var = demo.group(1).strip("$()")
    recipe = re.search(rf"^\$\({stamp_var}\):.*\n((?:\t.*\n)+)", makefile, flags=re.MULTILINE)
    assert recipe is not None
    assert "pip install --quiet -e ." in recipe.group(1) and "[test]" not in recipe.group(1)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert isinstance(project["license"], str)  # a table is deprecated: setuptools prints a box
