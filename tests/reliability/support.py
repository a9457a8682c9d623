"""What the reliability tests share: a world with a distinctive key, and the sweep for it.

Every test here runs the real worker (`python -m worker run`) as a child process against the
emulator over real sockets, authenticated with `SECRET_KEY`, a long random-looking key that
cannot occur by accident. Everything a worker writes — its stderr, the queue tree (reports,
failed/, journals, progress, heartbeats) — goes under the session's artifacts directory, which
`tests/reliability/conftest.py` sweeps for the key when the session ends, whichever of these
tests ran and in whatever order (`assert_no_leaks`). Emulator files (its world config and state,
which legitimately hold the key) live elsewhere.

Sizes: each test has a short case that runs in `make test` and a full case marked `slow`,
which `tests/reliability/conftest.py` skips unless RELIABILITY_FULL=1 (`make test-reliability`).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from tests.support import worker_env as base_worker_env
from worker.api.auth import ApiKeyAuth
from worker.api.backoff import RetryPolicy
from worker.api.client import ApiClient
from worker.api.governor import Governor

# 44 characters of "entropy": if this string shows up anywhere, it leaked.
SECRET_KEY = "vpk_live_7Qm2Xc9RfT4wLz8NbVd3KpH6sJ0yGa5EuBi1"
OWNER, SPACE, MODEL = "demo", "main", "phone/v1"
WINDOW = 12  # any piece of the key this long is a leak: no 12 characters of it occur by chance
VOICE_S = 4.6  # seconds of voice in the first audio of a queue (tests.support.make_queue)


def leaks(root: Path, secret: str = SECRET_KEY, window: int = WINDOW) -> list[str]:
    """Every file under `root` holding `secret` or any `window`-long piece of it, and every
    path whose name holds its first piece: one line each, naming the file and what was found."""
    pieces = {secret[i : i + window].encode() for i in range(len(secret) - window + 1)}
    found = []
    for path in sorted(root.rglob("*")):
        if secret[:window] in path.name:
            found.append(f"{path}: in the name")
        if not path.is_file():
            continue
        data = path.read_bytes()
        hits = [p.decode() for p in pieces if p in data]
        if hits:
            found.append(f"{path}: {sorted(hits)[:2]}")
    return found


def assert_no_leaks(root: Path) -> None:
    """The session's sweep (tests/reliability/conftest.py): fails on any leak under `root`."""
    found = leaks(root)
    assert not found, f"the API key leaked into {len(found)} output(s):\n" + "\n".join(found)


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
            vps = [vp async for vp in client.list_identity_voiceprints(OWNER, SPACE, identity)]
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
