"""What the reliability tests share: a world with a distinctive key, queues, worker processes.

Every test here runs the real worker (`python -m worker run`) as a child process against the
emulator over real sockets, authenticated with `SECRET_KEY`, a long random-looking key that
cannot occur by accident. Everything a worker writes — its stderr, the queue tree (reports,
failed/, journals, progress, heartbeats) — goes under the session's artifacts directory, which
`test_6_secrets.py` sweeps for the key at the end. Emulator files (its world config and state,
which legitimately hold the key) live elsewhere.

Sizes: each test has a short case that runs in `make test` and a full case marked `slow`,
which `tests/reliability/conftest.py` skips unless RELIABILITY_FULL=1 (`make test-reliability`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from pydantic import SecretStr

from tests.audiogen import write_audio
from tests.worker_process import worker_env as base_worker_env
from worker.api.auth import ApiKeyAuth
from worker.api.backoff import RetryPolicy
from worker.api.client import ApiClient
from worker.api.governor import Governor

# 44 characters of "entropy": if this string shows up anywhere, it leaked.
SECRET_KEY = "vpk_live_7Qm2Xc9RfT4wLz8NbVd3KpH6sJ0yGa5EuBi1"
OWNER, SPACE, MODEL = "demo", "main", "phone/v1"
WORKER_ARGV = [sys.executable, "-m", "worker", "run"]


def write_world(directory: Path) -> Path:
    """An emulator world whose only user `demo` holds `SECRET_KEY` (outside the artifacts)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "world.json"
    world = {
        "users": [{"handle": OWNER, "api_keys": [SECRET_KEY]}],
        "spaces": [{"owner": OWNER, "handle": SPACE}],
    }
    path.write_text(json.dumps(world))
    return path


def identities(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i:04d}" for i in range(n)]


def make_queue(root: Path, ids: list[str]) -> Path:
    """A queue whose audio root holds `<id>.wav` for each id, every file distinct."""
    queue = root / "queue"
    for i, name in enumerate(ids):
        # Distinct lengths give distinct contents: the sha256 alias tells audios apart.
        write_audio(queue / "audio" / f"{name}.wav", voice_s=4.6 + i / 1000, samplerate=8000)
    (queue / "inbox").mkdir(parents=True, exist_ok=True)
    return queue


def job_manifest(ids: list[str]) -> dict[str, Any]:
    return {"model": MODEL, "enrollments": [{"identity": i, "audios": [f"{i}.wav"]} for i in ids]}


def drop(queue: Path, name: str, content: object) -> Path:
    """Maildir drop: write under a dot-name, then rename into inbox/."""
    inbox = queue / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    tmp = inbox / f".{name}.tmp"
    if isinstance(content, bytes):
        tmp.write_bytes(content)
    else:
        tmp.write_text(content if isinstance(content, str) else json.dumps(content))
    target = inbox / name
    tmp.rename(target)
    return target


def worker_env(queue: Path, base_url: str, **extra: Any) -> dict[str, str]:
    """The worker's environment; `extra` are settings by field name (rate_limit=…)."""
    env = base_worker_env(
        queue,
        base_url,
        ENROLLER_API_KEY=SECRET_KEY,
        ENROLLER_OWNER=OWNER,
        ENROLLER_SPACE=SPACE,
        ENROLLER_RATE_LIMIT="200",
        ENROLLER_BURST="5",
        ENROLLER_LEASE_TTL="1",
        ENROLLER_LOG_LEVEL="debug",  # the most lines: the widest net for the secrets check
    )
    env.update({f"ENROLLER_{k.upper()}": str(v) for k, v in extra.items()})
    return env


async def start_worker(env: dict[str, str], log: Path, *, once: bool = True) -> anyio.abc.Process:
    """The worker as a child; its stderr is appended to `log` (an artifact)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as err:
        return await anyio.open_process(
            [*WORKER_ARGV, *(["--once"] if once else [])],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=log.parent,
        )


async def run_worker(env: dict[str, str], log: Path) -> int:
    """Run `enroller run --once` to its exit (the test's timeout bounds it); the exit code."""
    proc = await start_worker(env, log)
    return await proc.wait()


def log_text(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


def assert_no_crash(log: Path) -> None:
    text = log_text(log)
    assert "Traceback" not in text, text[-3000:]


def reports(queue: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((queue / "reports").glob("*.report.json"))]


def only_report(queue: Path) -> dict[str, Any]:
    [report] = reports(queue)
    return report


def queue_files(queue: Path, folder: str) -> list[str]:
    return sorted(p.name for p in (queue / folder).iterdir() if not p.name.startswith("."))


def api(base_url: str) -> ApiClient:
    """The worker's own client, to read the truth from the API after a run."""
    return ApiClient(
        base_url,
        ApiKeyAuth(SecretStr(SECRET_KEY)),
        governor=Governor(1000, 50),
        retry=RetryPolicy(max_retries=20, max_time=120),  # reads may meet injected faults too
    )


async def assert_enrolled_once(base_url: str, ids: list[str]) -> None:
    """Per identity: exactly one voiceprint, computed, and exactly one usage record."""
    async with api(base_url) as client:
        for identity in ids:
            vps = [vp async for vp in client.list_voiceprints(OWNER, SPACE, identity)]
            assert len(vps) == 1, (identity, vps)
            assert vps[0].state == "computed", (identity, vps[0])
        charged: Counter[str] = Counter()
        async for record in client.list_usage_records(OWNER, page_size=50):
            ident = getattr(record.voiceprint, "identity", None)
            charged[str(getattr(ident, "handle", ident))] += 1
    wanted = set(ids)
    per_identity = {i: charged.get(i, 0) for i in ids}
    assert all(n == 1 for n in per_identity.values()), {
        i: n for i, n in per_identity.items() if n != 1
    }
    assert not set(charged) - wanted - {"None"}, set(charged) - wanted


def assert_report_complete(report: dict[str, Any], ids: list[str]) -> None:
    rows = report["enrollments"]
    assert sorted(r["identity"] for r in rows) == sorted(ids)  # complete, one row each
    assert {r["outcome"] for r in rows} <= {"enrolled", "unchanged"}, [
        r for r in rows if r["outcome"] not in {"enrolled", "unchanged"}
    ][:3]
    usage = report["usage"]
    assert usage["found"] == usage["expected"] and not usage["double_charged"], usage
