"""Exactly-once against an API that does not answer like our kind emulator (issue 12).

The emulator acts out asynchronous processing (`--file-delay-ms`, `--compute-delay-ms`),
files shared between voiceprints of one identity, and two worker processes on overlapping
manifests. Each run is verified through the API (tests/e2e/exactly_once.py): one upload per
file, exactly the manifest's audios per voiceprint, one usage record per voiceprint.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

from tests.audiogen import write_audio
from tests.e2e.exactly_once import Expected, verify_exactly_once
from tests.emulator_harness import running_emulator
from tests.support import drop, make_settings, report_of, run_once

FILE_MS, COMPUTE_MS = 400, 700


def audio(queue: Path, name: str) -> Path:
    """A distinct recording per name (the length differs), made once."""
    path = queue / "audio" / name
    if not path.exists():
        voice = 5.0 + zlib.crc32(name.encode()) % 200 / 100
        write_audio(path, voice_s=voice, samplerate=8000)
    return path


def counts(report: dict[str, Any]) -> dict[str, int]:
    return {outcome: n for outcome, n in report["counts"].items() if n}


def manifest(queue: Path, enrollments: Expected) -> dict[str, Any]:
    """A manifest of these (identity, voiceprint) → files, making the audio files."""
    rows = []
    for (identity, voiceprint), paths in enrollments.items():
        names = [str(p.relative_to(queue / "audio")) for p in paths]
        rows.append({"identity": identity, "voiceprint": voiceprint, "audios": names})
    return {"model": "phone/v1", "enrollments": rows}


async def test_async_processing_enrolls_two_and_one_audio_enrollments_once(tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    expected: Expected = {
        (f"two-{i}", "main"): [audio(queue, f"two-{i}-a.wav"), audio(queue, f"two-{i}-b.wav")]
        for i in range(3)
    } | {(f"one-{i}", "main"): [audio(queue, f"one-{i}.wav")] for i in range(3)}
    drop(queue, "async.json", manifest(queue, expected))
    async with running_emulator(file_delay_ms=FILE_MS, compute_delay_ms=COMPUTE_MS) as emu:
        assert await run_once(make_settings(queue, emu.base_url)) == 0
        report = report_of(queue, "async")
        assert counts(report) == {"enrolled": 6}, report["enrollments"]
        assert report["credits_spent"] == 6 and report["usage"]["found"] == 6
        stats = await emu.stats()
        async with emu.client() as api:
            await verify_exactly_once(api, stats, expected)
    # The engine waited by reading; it never collided with the processing.
    assert stats["conflicts"] == 0, stats["requests"]["by_status"]


async def test_two_voiceprints_sharing_a_file_then_a_retry_of_one(tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    shared, own = audio(queue, "ann-shared.wav"), audio(queue, "ann-own.wav")
    expected: Expected = {("ann", "first"): [shared, own], ("ann", "second"): [shared]}
    drop(queue, "shared.json", manifest(queue, expected))
    async with running_emulator(file_delay_ms=FILE_MS, compute_delay_ms=COMPUTE_MS) as emu:
        settings = make_settings(queue, emu.base_url)
        assert await run_once(settings) == 0
        assert counts(report_of(queue, "shared")) == {"enrolled": 2}
        # The retry of one of them: nothing to upload, add or compute again.
        before = await emu.stats()
        drop(queue, "retry.json", manifest(queue, {("ann", "second"): [shared]}))
        assert await run_once(settings) == 0
        assert counts(report_of(queue, "retry")) == {"unchanged": 1}
        stats = await emu.stats()
        async with emu.client() as api:
            await verify_exactly_once(api, stats, expected)
    assert stats["created"] == before["created"]  # no audio, voiceprint or compute more
