"""A real `redis-server` for tests, on a free port, in a temporary directory.

Tests that need it skip with one line when the server is not installed; `.ci/run` installs it
(Debian's `redis-server`), so CI never skips.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import free_port, wait_until

INSTALL_HINT = (
    "redis-server not found: apt-get install redis-server (or use the compose redis service)"
)


@dataclass
class RedisServer:
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip(INSTALL_HINT)
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._listening, 10, f"redis-server listening on {self.port}")

    def _listening(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), 0.2),
        ):
            return True
        return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@contextlib.contextmanager
def running_redis(directory: Path, port: int | None = None) -> Iterator[RedisServer]:
    server = RedisServer(port or free_port(), directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def require_redis() -> None:
    """Skip the calling test with one line when no redis-server is installed."""
    if shutil.which("redis-server") is None:
        pytest.skip(INSTALL_HINT)
