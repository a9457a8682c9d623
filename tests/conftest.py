"""Shared fixtures. Tests never read the developer's real environment or .env."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


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


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
