"""Truthful accounting: every compute this job performed is a credit spent and is checked
against the usage records, whatever the enrollment's outcome; each run of a job keeps its
own reports."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_engine_exactly_once import audio
from tests.emulator_harness import running_emulator
from tests.support import MODEL, drop, job_manifest, make_settings, run_once


def reports(queue: Path, stem: str) -> list[dict]:
    paths = sorted(
        (queue / "reports").glob(f"{stem}-*.report.json"), key=lambda p: (len(p.name), p.name)
    )
    return [json.loads(p.read_text()) for p in paths]


async def test_a_voiceprint_computed_then_failed_is_charged_and_counted(tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    audio(queue, "slow.wav")
    drop(
        queue,
        "slow.json",
        {"model": "phone/v1", "enrollments": [{"identity": "slow", "audios": ["slow.wav"]}]},
    )
    # The compute is accepted (billed) but settles after the processing timeout.
    async with running_emulator(compute_delay_ms=3000) as emu:
        settings = make_settings(queue, emu.base_url, processing_timeout=0.5)
        assert await run_once(settings) == 1
        [report] = reports(queue, "slow")
        stats = await emu.stats()
    [row] = report["enrollments"]
    assert row["outcome"] == "failed" and row["error"]["step"] == "compute"
    assert "still processing after" in row["error"]["reason"]
    assert "ENROLLER_PROCESSING_TIMEOUT" in row["error"]["reason"]
    assert stats["credits_used"] == {"demo": 1}
    assert report["credits_spent"] == 1  # charged, so counted, although it did not enroll
    assert report["usage"]["expected"] == 1  # and the usage check looks for its record


async def test_each_run_of_a_job_writes_its_own_reports(tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    for i in range(2):
        audio(queue, f"cust-{i}.wav")
    document = job_manifest(["cust-0", "cust-1"], MODEL)
    async with running_emulator() as emu:
        settings = make_settings(queue, emu.base_url)
        drop(queue, "batch.json", document)
        assert await run_once(settings) == 0
        first = sorted(p.name for p in (queue / "reports").iterdir())
        drop(queue, "batch.json", document)  # the same content again: the same job id
        assert await run_once(settings) == 0
        drop(queue, "batch.json", document)
        assert await run_once(settings) == 0
    names = sorted(p.name for p in (queue / "reports").glob("*.report.json"))
    job = first[0].split(".")[0]
    assert names == sorted(f"{job}{run}.report.json" for run in ("", "-2", "-3"))
    runs = reports(queue, "batch")
    assert [r["counts"]["enrolled"] for r in runs] == [2, 0, 0]  # the first run's is intact
    assert [r["counts"]["unchanged"] for r in runs] == [0, 2, 2]
    assert len({r["started_at"] for r in runs}) == 3
