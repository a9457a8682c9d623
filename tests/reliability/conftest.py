"""Reliability suite: full-size cases (`slow`) run only with RELIABILITY_FULL=1.

`make test-reliability` sets it and runs every case; `make test` (plain `pytest`) runs the short
case of each test, so the default suite stays quick for everyone who runs `pytest` directly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.support import assert_no_leaks

FULL = os.environ.get("RELIABILITY_FULL") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if FULL:
        return
    skip = pytest.mark.skip(reason="full size: RELIABILITY_FULL=1 (make test-reliability)")
    here = Path(__file__).parent
    for item in items:
        if "slow" in item.keywords and here in Path(str(item.fspath)).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Everything workers write in this session, swept for the API key when the session ends.

    The sweep is this fixture's finaliser, so it sees what every test wrote, whichever of them
    ran and in whatever order; a leak fails the session (an error at the teardown of its last
    test, naming each file). `test_6_secrets.py` proves that it does.
    """
    root = tmp_path_factory.mktemp("reliability-artifacts")
    yield root
    assert_no_leaks(root)


@pytest.fixture(scope="session")
def private(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files that legitimately hold the key (the emulator's world): never swept."""
    return tmp_path_factory.mktemp("emulator-private")


@pytest.fixture
def area(artifacts: Path, request: pytest.FixtureRequest) -> Path:
    """This test's own corner of the artifacts directory."""
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in request.node.name)[:80]
    path = artifacts / name
    path.mkdir()
    return path
