"""Issue 14: three workers, one budget. Real `enroller run --once` processes share one queue and
one Redis against an emulator that enforces the account's limit; Redis restarts mid-run.
Every identity is enrolled exactly once and charged once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.emulator_harness import running_emulator
from tests.redis_harness import running_redis
from tests.support import drop, job_manifest, make_queue, start_worker, wait_for, worker_env

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
            log_paths = [tmp_path / f"worker-{i}.log" for i in range(3)]
            procs = [await start_worker(env, log) for log in log_paths]
            # Redis goes away once the fleet is working, then comes back on the same port.
            live = emulator.emulator.stats  # in-process: read directly
            await wait_for(lambda: live.created["computes"] >= 5, 120, "5 computes by the fleet")
            redis.stop()
            # Down until a worker has noticed (not for a while): then it comes back.
            await wait_for(
                lambda: any(b'"fleet_redis_unreachable"' in p.read_bytes() for p in log_paths),
                60,
                "a worker noticing that Redis is gone",
            )
            redis.start()
            codes = [await p.wait() for p in procs]
            stats = await emulator.stats()
    worker_logs = [log.read_text() for log in log_paths]
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
