"""Throttling storm: the server allows half the rate the worker is configured for.

Proves that the governor honours every Retry-After (the emulator counts any request sent by a
token before its Retry-After has passed: `retry_after_violations` stays 0), slows itself to the
server's budget so that 429s stay a small share of requests, and that 429s cost nothing:
the job completes with every enrollment enrolled once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.emulator_harness import running_emulator
from tests.jobwatch import only_report
from tests.reliability.support import (
    MODEL,
    VOICE_S,
    assert_enrolled_once,
    assert_report_complete,
    identities,
    worker_env,
    write_world,
)
from tests.support import assert_no_crash, drop, job_manifest, make_queue, run_worker

MAX_429_SHARE = 0.10


@pytest.mark.parametrize(
    ("n", "server_rate"),
    [pytest.param(12, 40, id="short"), pytest.param(120, 20, id="full", marks=pytest.mark.slow)],
)
@pytest.mark.timeout(300)
async def test_server_limit_half_the_clients_completes_within_retry_after(
    n: int, server_rate: int, area: Path, tmp_path: Path
) -> None:
    ids = identities("storm", n)
    queue = make_queue(area / "queue", ids, voice_s=VOICE_S)
    drop(queue, "storm.json", job_manifest(ids, MODEL))
    world = write_world(tmp_path / "emulator")
    async with running_emulator(rate_limit=server_rate, burst=5, config=world) as emu:
        env = worker_env(queue, emu.base_url, rate_limit=2 * server_rate, burst=1)
        code = await run_worker(env, area / "worker.base.log")
        assert_no_crash(area / "worker.base.log")
        assert code == 0
        stats = await emu.stats()
        await assert_enrolled_once(emu.base_url, ids)

    assert_report_complete(only_report(queue), ids)
    assert stats["rate_limited"] > 0  # it really was a storm
    share = stats["rate_limited"] / stats["requests"]["total"]
    assert share <= MAX_429_SHARE, (share, stats["rate_limited"], stats["requests"]["total"])
    assert stats["retry_after_violations"] == 0
    assert stats["created"]["computes"] == n and stats["created"]["audios"] == n
