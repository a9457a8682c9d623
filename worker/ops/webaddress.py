"""Where a running `enroller web` can be reached, told through the queue so `enroller status`
can print it (issue 31).

Owns: the address file `<queue>/.web/<host>-<pid>.json` (`{url, host, pid, at}`), rewritten by
the web server every heartbeat interval and removed when it stops, and reading the fresh ones
back. A separate folder from the workers' heartbeats (`.health/`): a web server is not a worker
and must never count as one for `enroller healthcheck`. The file holds no token.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

from worker.base.fsutil import atomic_write_json

WEB_DIR = ".web"
MAX_FILES = 100  # address files read at most: a folder of stray files costs no more
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def web_address_path(queue_dir: Path, host: str | None = None, pid: int | None = None) -> Path:
    """This process's address file (host and pid default to the caller's own)."""
    host = socket.gethostname() if host is None else host
    pid = os.getpid() if pid is None else pid
    return queue_dir / WEB_DIR / f"{_UNSAFE.sub('_', host)}-{pid}.json"


def public_url(bind_host: str, port: int) -> str:
    """The address people type: the machine's name when the server listens on every
    interface (0.0.0.0 or ::), brackets around an IPv6 literal."""
    host = socket.gethostname() if bind_host in ("0.0.0.0", "::", "") else bind_host  # noqa: S104
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def write_web_address(path: Path, url: str) -> None:
    """Tell (again) where the page is; atomic, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"url": url, "host": socket.gethostname(), "pid": os.getpid(), "at": time.time()}
    atomic_write_json(path, doc, indent=None)


def remove_web_address(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def read_web_addresses(queue_dir: Path, max_age: float, now: float | None = None) -> list[str]:
    """The URLs of the web servers whose address file is younger than `max_age` seconds."""
    now = time.time() if now is None else now
    folder = queue_dir / WEB_DIR
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".json"))[:MAX_FILES]
    except OSError:
        return []
    urls = []
    for name in names:
        try:
            doc: Any = json.loads((folder / name).read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("url"), str):
            continue
        at = doc.get("at")
        if isinstance(at, int | float) and 0 <= now - at <= max_age:
            urls.append(doc["url"])
    return urls
