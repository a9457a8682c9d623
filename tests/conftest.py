"""Shared fixtures. Tests never read the developer's real environment or .env."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
import structlog

import tests.fuzzing  # noqa: F401  # registers and loads the Hypothesis profile first
from tests.emulator_harness import EmulatorHandle, running_emulator
from tests.s3_harness import s3_server  # noqa: F401  # one SeaweedFS for the whole session


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fuzz: uses Hypothesis (marked automatically); `make fuzz` runs these"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every Hypothesis test `fuzz`, so `make fuzz` (-m fuzz) finds new ones by itself."""
    for item in items:
        if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            item.add_marker(pytest.mark.fuzz)


@pytest.fixture(autouse=True)
def _clean_enroller_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("ENROLLER_"):
            monkeypatch.delenv(name)
    # A .env in the developer's checkout must not leak into tests.
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    structlog.reset_defaults()  # a test that configured logging must not shape the next one


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorHandle]:
    """An in-process emulator with default options on a free port (see tests/emulator_harness)."""
    async with running_emulator() as handle:
        yield handle
