"""Issue 14: three workers, one budget. Real `enroller run --once` processes share one queue and
one Redis against an emulator that enforces the account's limit; Redis restarts mid-run.
Every identity is enrolled exactly once and charged once."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import anyio
import pytest

from tests.emulator_harness import running_emulator
from tests.redis_harness import running_redis
from tests.support import WORKER, drop, job_manifest, make_queue, worker_env

MANIFESTS, PER_MANIFEST = 6, 10
RATE = 60


def _queue(queue: Path) -> list[str]:
    batches = [[f"fleet-{m}-{e}" for e in range(PER_MANIFEST)] for m in range(MANIFESTS)]
    identities = [identity for batch in batches for identity in batch]
    make_queue(queue, identities, step_s=0)
    for m, batch in enumerate(batches):
        drop(queue, f"batch-{m}.json", job_manifest(batch), maildir=False)
    return identities


@pytest.mark.scenario
@pytest.mark.timeout(180)
async def test_three_workers_share_one_budget_and_survive_a_redis_restart(tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    identities = _queue(queue)
    with running_redis(tmp_path) as redis:
        async with running_emulator(rate_limit=RATE, burst=5) as emulator:
            env = worker_env(
                queue,
                emulator.base_url,
                ENROLLER_REDIS_URL=redis.url,
                ENROLLER_RATE_LIMIT=str(RATE),
                ENROLLER_BURST="5",
                ENROLLER_MAX_JOBS="2",
                ENROLLER_HEARTBEAT_INTERVAL="0.5",
            )
            logs = [(tmp_path / f"worker-{i}.log").open("wb") for i in range(3)]
            procs = [
                await anyio.open_process(
                    [*WORKER, "run", "--once"], env=env, stdout=subprocess.DEVNULL, stderr=log
                )
                for log in logs
            ]
            # Redis goes away once the fleet is working, then comes back on the same port.
            while (await emulator.stats())["created"]["computes"] < 5:  # noqa: ASYNC110
                await anyio.sleep(0.05)
            redis.stop()
            await anyio.sleep(1.0)
            redis.start()
            codes = [await p.wait() for p in procs]
            stats = await emulator.stats()
    for log in logs:
        log.close()
    worker_logs = [(tmp_path / f"worker-{i}.log").read_text() for i in range(3)]
    assert codes == [0, 0, 0], [text[-2000:] for text in worker_logs]
    assert all('"fleet_joined"' in text for text in worker_logs)
    assert any('"fleet_redis_unreachable"' in text for text in worker_logs)  # the restart hit
    rows = [
        row
        for path in (queue / "reports").glob("*.report.json")
        for row in json.loads(path.read_text())["enrollments"]
    ]
    assert sorted(r["identity"] for r in rows) == sorted(identities)  # each once, none lost
    assert {r["outcome"] for r in rows} == {"enrolled"}
    assert stats["created"]["computes"] == len(identities)  # one charge per voiceprint
    assert stats["uploads"]["accepted"] == len(identities)  # one upload per file
