"""A real `enroller run --once` SIGKILLed at each step of a voiceprint swap (issue 28; the crash
points of worker/enrollment/swap.py), then started again: the swap is finished once, with
exactly one billed compute for the new voiceprint, the old one retired as asked, and the
customer left with one computed voiceprint under the manifest's handle."""

from __future__ import annotations

import signal
from pathlib import Path

import anyio
import pytest

from tests.audiogen import write_audio
from tests.e2e.test_existing_enrollments import WHO, records_of, server_view
from tests.emulator_harness import running_emulator
from tests.jobwatch import lease_stale
from tests.support import (
    MODEL,
    WORKER,
    drop,
    job_manifest,
    make_queue,
    make_settings,
    names,
    report_of,
    run_once,
    wait_for,
    worker_env,
)
from worker.enrollment.swap_rules import next_handle, retired_handle

ONCE = [*WORKER, "run", "--once"]
RENAME_POINTS = ["swap.started", "swap.built", "swap.moved_aside", "swap.moved_in"]
DELETE_POINTS = ["swap.started", "swap.old_deleted"]


async def crash_then_resume(
    tmp_path: Path, point: str, retire: str, **emulator_options: bool
) -> None:
    queue = make_queue(tmp_path / "queue", [WHO], folders=())
    write_audio(queue / "audio" / "new.wav", voice_s=6.0, samplerate=8000)
    async with running_emulator(**emulator_options) as emu:
        drop(queue, "first.json", job_manifest([WHO], MODEL))
        assert await run_once(make_settings(queue, emu.base_url)) == 0
        [(old_id, _, _, old_audios)] = (await server_view(emu.base_url)).values()
        new = {"identity": WHO, "audios": ["new.wav"], "existing": "overwrite", "retire": retire}
        drop(queue, "again.json", new)

        env = worker_env(queue, emu.base_url, ENROLLER_LEASE_TTL="1")
        crashed = await anyio.run_process(
            ONCE, env={**env, "ENROLLER_TEST_CRASH_AT": point}, check=False
        )
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr.decode()[-2000:]
        assert names(queue / "active"), "the job stays in active/ to be resumed"
        await wait_for(lambda: lease_stale(queue, 1.0), 30, "the dead worker's lease stale")
        again = await anyio.run_process(ONCE, env=env, check=False)
        assert again.returncode == 0, again.stderr.decode()[-2000:]

        [row] = report_of(queue, "again")["enrollments"]
        assert row["outcome"] == "replaced", row
        after = await server_view(emu.base_url)
        new_id, model, state, audios = after["main"]
        assert (model, state) == (MODEL, "computed")
        assert new_id != old_id and audios != old_audios
        assert next_handle("main") not in after
        retired = retired_handle("main", old_id)
        if retire == "keep":
            assert after[retired][0] == old_id
        else:
            assert set(after) == {"main"}
        # Exactly one more usage record: the new voiceprint's one compute, whatever crashed.
        assert len(await records_of(emu.base_url)) == 2
        stats = await emu.stats()
        assert stats["created"]["computes"] == 2


@pytest.mark.scenario
@pytest.mark.timeout(120)
@pytest.mark.parametrize("point", [*RENAME_POINTS, "swap.retired_deleted"])
async def test_a_crash_at_each_step_of_a_rename_swap_finishes_it_once(
    tmp_path: Path, point: str
) -> None:
    await crash_then_resume(tmp_path, point, "delete")


@pytest.mark.scenario
@pytest.mark.timeout(120)
@pytest.mark.parametrize("point", RENAME_POINTS)
async def test_a_crash_during_a_swap_that_keeps_the_old_one(tmp_path: Path, point: str) -> None:
    await crash_then_resume(tmp_path, point, "keep")


@pytest.mark.scenario
@pytest.mark.timeout(120)
@pytest.mark.parametrize("point", DELETE_POINTS)
async def test_a_crash_at_each_step_of_a_delete_swap_finishes_it_once(
    tmp_path: Path, point: str
) -> None:
    await crash_then_resume(tmp_path, point, "delete", no_voiceprint_rename=True)
