"""A real Docker engine and Compose for the container tests: found, described, driven.

Compose is whichever the machine has: v2 (`docker compose`) first, else Debian's 1.29
(`docker-compose`); the compose file must work with both. Every call has a timeout, and the
output of a failed call is in the assertion message.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "voiceprint-enroller:local"  # the compose file's `image:`
HOST_UID = 1000  # the compose file's default ${HOST_UID:-1000}: a non-root user


def run(argv: list[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command to its end; never raises on its exit code."""
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{done.args}: exit {done.returncode}\n{done.stdout}{done.stderr}"
    return done.stdout


def engine_version() -> str | None:
    """The engine's version, or None when no engine answers."""
    if shutil.which("docker") is None:
        return None
    try:
        done = run(["docker", "version", "--format", "{{.Server.Version}}"], timeout=20)
    except subprocess.TimeoutExpired:
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def compose_program() -> tuple[list[str], str]:
    """(argv prefix, version line) of the Compose to use."""
    if shutil.which("docker") and run(["docker", "compose", "version"], timeout=20).returncode == 0:
        return ["docker", "compose"], ok(run(["docker", "compose", "version"], timeout=20)).strip()
    if shutil.which("docker-compose"):
        version = ok(run(["docker-compose", "version", "--short"], timeout=20)).strip()
        return ["docker-compose"], f"docker-compose version {version}"
    raise AssertionError("no Compose: install docker-compose (Debian) or the compose plugin")


def project_files() -> list[Path]:
    """What a fresh clone of this working tree holds (tracked and new, not ignored, files)."""
    done = run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        timeout=30,
        cwd=ROOT,
    )
    names = ok(done).split("\0")
    return [Path(n) for n in names if n and (ROOT / n).is_file()]


def fresh_checkout(dest: Path) -> Path:
    """A copy of the project as a user would have it, with jobs/ owned by the compose user."""
    for rel in project_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    for folder in [dest / "jobs", *(p for p in (dest / "jobs").rglob("*"))]:
        os.chown(folder, HOST_UID, HOST_UID)
    return dest


@dataclass
class Compose:
    """`docker compose` (or `docker-compose`) on one project folder under one project name."""

    folder: Path
    project: str
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.program, self.version = compose_program()

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "COMPOSE_PROJECT_NAME": self.project, **self.env}
        return run([*self.program, *args], timeout=timeout, cwd=self.folder, env=env)

    def container(self, service: str) -> str:
        """The id of the service's one container."""
        ids = ok(self("ps", "-q", service)).split()
        assert len(ids) == 1, f"{service}: containers {ids}"
        return ids[0]

    def inspect(self, service: str) -> dict[str, Any]:
        doc = json.loads(ok(run(["docker", "inspect", self.container(service)], timeout=30)))
        assert isinstance(doc, list) and len(doc) == 1
        return dict(doc[0])

    def project_containers(self) -> list[str]:
        label = f"label=com.docker.compose.project={self.project}"
        return ok(run(["docker", "ps", "-aq", "--filter", label], timeout=30)).split()


def require_engine_or_skip() -> None:
    """Called at the top of the container test module: one skip line unless asked for.

    The tests build the image in a real engine, which takes minutes, so they run only when
    `make test-container` asks (CONTAINER_TESTS=1); asked and impossible is a failure.
    """
    import pytest

    found = engine_version()
    if os.environ.get("CONTAINER_TESTS") != "1":
        where = f"engine {found} found" if found else "no Docker engine here"
        pytest.skip(
            f"container tests: `make test-container` runs them ({where}; "
            "CONTAINER_TESTS=1 with a running Docker engine)",
            allow_module_level=True,
        )
    if found is None:
        pytest.exit("container tests: no Docker engine answers; start one (dockerd)", 1)
