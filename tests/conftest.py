"""Shared fixtures. Tests never read the developer's real environment or .env."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
import structlog

from tests.emulator_harness import EmulatorHandle, running_emulator


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
