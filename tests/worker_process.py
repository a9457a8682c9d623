"""Running the worker as a real process in tests: its environment, nothing of the caller's."""

from __future__ import annotations

import os
import sys
from pathlib import Path

WORKER = [sys.executable, "-m", "worker"]


def worker_env(queue: Path, base_url: str, **extra: str) -> dict[str, str]:
    """The environment of a worker on `queue` against the emulator at `base_url`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENROLLER_")}
    env.update(
        ENROLLER_API_URL=base_url,
        ENROLLER_API_KEY="demo-key",
        ENROLLER_OWNER="demo",
        ENROLLER_SPACE="main",
        ENROLLER_QUEUE_DIR=str(queue),
        ENROLLER_MIN_AGE="0",
        ENROLLER_LOG_FORMAT="json",
    )
    env.update(extra)
    return env
