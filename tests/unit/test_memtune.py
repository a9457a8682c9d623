"""The malloc arena cap: set on glibc unless the operator chose, never an error elsewhere."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from worker.base.memtune import cap_malloc_arenas

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def _in_child(env: dict[str, str]) -> str:
    """`cap_malloc_arenas()` in a fresh interpreter: the cap is per process and not undone."""
    code = "from worker.base.memtune import cap_malloc_arenas; print(cap_malloc_arenas())"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.mark.skipif(not GLIBC, reason="the arena cap exists on glibc only")
def test_glibc_takes_the_cap() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.pop("GLIBC_TUNABLES", None)
    assert _in_child(env) == "True"


@pytest.mark.parametrize(
    "chosen", [{"MALLOC_ARENA_MAX": "8"}, {"GLIBC_TUNABLES": "glibc.malloc.arena_max=4"}]
)
def test_an_operators_choice_is_left_alone(
    monkeypatch: pytest.MonkeyPatch, chosen: dict[str, str]
) -> None:
    for name, value in chosen.items():
        monkeypatch.setenv(name, value)
    assert cap_malloc_arenas() is False
