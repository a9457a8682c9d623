"""Faults: 30 % of API requests answered 500/503 or dropped; every enrollment still ends enrolled.

Proves that transient failures (known: 5xx; unknown: a dropped connection mid-request) are
retried or reconciled, never turned into a failed enrollment, a second audio or a second charge.
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
from tests.support import assert_no_crash, drop, job_manifest, make_queue, names, run_worker


@pytest.mark.parametrize(
    "n",
    [pytest.param(15, id="short"), pytest.param(150, id="full", marks=pytest.mark.slow)],
)
@pytest.mark.timeout(300)
async def test_fault_rate_30_percent_every_enrollment_enrolled(
    n: int, area: Path, tmp_path: Path
) -> None:
    ids = identities("fault", n)
    queue = make_queue(area / "queue", ids, voice_s=VOICE_S)
    drop(queue, "faults.json", job_manifest(ids, MODEL))
    world = write_world(tmp_path / "emulator")
    async with running_emulator(fault_rate=0.3, seed=1234, config=world) as emu:
        # 0.3^11: a step that fails 11 times in a row would be a one-in-half-a-million event.
        env = worker_env(queue, emu.base_url, max_retries=10, rate_limit=300)
        code = await run_worker(env, area / "worker.base.log")
        assert_no_crash(area / "worker.base.log")
        assert code == 0
        stats = await emu.stats()
        await assert_enrolled_once(emu.base_url, ids)

    report = only_report(queue)
    assert_report_complete(report, ids)
    assert report["counts"]["enrolled"] == n
    assert stats["faults"].get("dropped", 0) > 0 and stats["faults"].get("503", 0) > 0, stats[
        "faults"
    ]
    assert stats["created"]["audios"] == n  # no audio created twice despite unknown outcomes
    assert stats["uploads"]["accepted"] == n
    assert stats["created"]["computes"] == n  # one charge each
    assert names(queue / "failed") == [] and len(names(queue / "done")) == 1
