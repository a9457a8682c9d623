"""Two `enroller run --once` processes on one queue, given overlapping manifests at once.

They share the queue directory, so they share its `.locks/`: a voiceprint (and a file its
identity shares between voiceprints) is worked on by one process at a time. Verified through
the API (tests/e2e/exactly_once.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio

from tests.e2e.exactly_once import Expected, verify_exactly_once
from tests.e2e.test_engine_exactly_once import COMPUTE_MS, FILE_MS, audio, manifest
from tests.emulator_harness import running_emulator
from tests.support import WORKER, drop, worker_env


async def test_two_run_once_processes_on_overlapping_manifests_at_the_same_moment(
    tmp_path: Path,
) -> None:
    queue = tmp_path / "queue"
    # The overlap comes first in both, so that both processes reach it at the same moment.
    both: Expected = {("bob", "main"): [audio(queue, "bob.wav")]}
    shared = audio(queue, "dan-shared.wav")
    first: Expected = {
        **both,
        ("dan", "first"): [shared, audio(queue, "dan-own.wav")],
        ("ann", "main"): [audio(queue, "ann-1.wav"), audio(queue, "ann-2.wav")],
    }
    second: Expected = {
        **both,
        ("dan", "second"): [shared],
        ("cat", "main"): [audio(queue, "cat.wav")],
    }
    drop(queue, "first.json", manifest(queue, first))
    drop(queue, "second.json", manifest(queue, second))
    async with running_emulator(
        file_delay_ms=FILE_MS // 2, compute_delay_ms=COMPUTE_MS // 2
    ) as emu:
        env = worker_env(queue, emu.base_url, ENROLLER_MAX_JOBS="1", ENROLLER_RATE_LIMIT="200")
        results: list[Any] = []

        async def worker() -> None:
            results.append(
                await anyio.run_process([*WORKER, "run", "--once"], env=env, check=False)
            )

        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(worker)
        for done in results:
            assert done.returncode == 0, done.stderr.decode()[-3000:]
        reports = [json.loads(p.read_text()) for p in (queue / "reports").glob("*.report.json")]
        assert len(reports) == 2
        outcomes = [
            (r["identity"], r["voiceprint"], r["outcome"])
            for rep in reports
            for r in rep["enrollments"]
        ]
        bob = sorted(o for i, _, o in outcomes if i == "bob")
        assert bob == ["enrolled", "unchanged"]  # one computed it, the other found it done
        stats = await emu.stats()
        async with emu.client() as api:
            await verify_exactly_once(api, stats, first | second)
    assert stats["created"]["computes"] == len(first | second)
