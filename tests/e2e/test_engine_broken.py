"""Issue 4's broken folder, through the worker: unrunnable files go to failed/ with their error
file, bad rows fail alone, good work goes on, and a file still being written is left alone."""

from __future__ import annotations

import json
from pathlib import Path

import anyio

from tests.e2e.test_engine import make_settings, report_of, run_once
from tests.e2e.test_validate_cli import BROKEN, audio_root, good_enrollment, write
from tests.emulator_harness import EmulatorHandle

__all__ = ["audio_root"]  # the fixture, shared with the validate tests

# Files in which nothing can run: the whole file goes to failed/.
UNRUNNABLE = {
    "bad-json.json",
    "missing-audio.json",
    "low-rate.json",
    "duplicate-audio.json",
    "empty.csv",
}


async def test_broken_folder_through_the_worker(
    tmp_path: Path, audio_root: Path, emulator: EmulatorHandle
) -> None:
    queue = tmp_path / "queue"
    inbox = queue / "inbox"
    for name, (content, _) in BROKEN.items():
        write(inbox, name, content)
    write(inbox, "good.json", {"enrollments": [good_enrollment("zed")]})
    # A producer writing in place, slowly: half a manifest now, the rest in a moment.
    growing = inbox / "growing.json"
    whole = json.dumps({"enrollments": [good_enrollment("yan")]})
    growing.write_text(whole[:20])
    settings = make_settings(queue, emulator.base_url, audio_root=audio_root, min_age=1.0)

    async def finish_writing() -> None:
        for cut in (40, 60):
            await anyio.sleep(0.6)
            growing.write_text(whole[:cut])
        await anyio.sleep(0.6)
        growing.write_text(whole)

    async with anyio.create_task_group() as tg:
        tg.start_soon(finish_writing)
        code = await run_once(settings)
    assert code == 1

    failed = {p.name for p in (queue / "failed").iterdir()}
    for name in UNRUNNABLE:
        stem = Path(name).stem
        [error_file] = [f for f in failed if f.startswith(f"{stem}-") and f.endswith(".error.json")]
        error = json.loads((queue / "failed" / error_file).read_text())
        assert error["file"] == name and error["problems"], name
        assert any(f.startswith(f"{stem}-") and not f.endswith(".error.json") for f in failed)

    reports = {
        json.loads(p.read_text())["manifest"]: json.loads(p.read_text())
        for p in (queue / "reports").glob("*.report.json")
    }
    runnable = set(BROKEN) - UNRUNNABLE
    assert set(reports) == runnable | {"good.json", "growing.json"}
    for name in runnable:
        rows = reports[name]["enrollments"]
        bad = [r for r in rows if r["error"] and r["error"]["step"] == "preflight"]
        assert len(bad) == 1, name  # exactly the one broken row
        assert bad[0]["outcome"] == "failed" and bad[0]["error"]["reason"]
        # The good rows run. Several files ask for the same voiceprint `ann/main` with other
        # audios or minAudios: one wins, the others are told so instead of being mixed in.
        for row in rows:
            if row not in bad:
                assert row["outcome"] in {"enrolled", "unchanged", "conflict"}, row
    # The slow writer's file was taken only once complete: it enrolled, it was not "bad JSON".
    assert reports["growing.json"]["counts"]["enrolled"] == 1
    assert reports["good.json"]["counts"]["enrolled"] == 1


async def test_preflight_failures_before_the_first_runnable_enrollment(
    tmp_path: Path, audio_root: Path, emulator: EmulatorHandle
) -> None:
    """Preflight streams ahead of the API work; it still spends no request on a manifest with
    nothing runnable, and one runnable enrollment after many bad ones still runs."""
    queue = tmp_path / "queue"
    missing = [{"identity": f"gone-{i}", "audios": [f"gone/{i}.wav"]} for i in range(5)]
    write(queue / "inbox", "nothing.json", {"enrollments": missing})
    settings = make_settings(queue, emulator.base_url, audio_root=audio_root)
    await emulator.reset_stats()
    assert await run_once(settings) == 1
    [error_file] = (queue / "failed").glob("nothing-*.error.json")
    problems = json.loads(error_file.read_text())["problems"]
    assert [p["place"] for p in problems] == [f"enrollments[{i}]" for i in range(5)]
    by_route = (await emulator.stats())["requests"]["by_route"]
    assert set(by_route) == {"GET /user"}  # the start-up check only: no enrollment request

    write(queue / "inbox", "late.json", {"enrollments": [*missing, good_enrollment("zed")]})
    assert await run_once(settings) == 1  # the failed rows make the exit code 1
    rows = report_of(queue, "late")["enrollments"]
    assert [r["outcome"] for r in rows].count("failed") == 5
    assert [r["identity"] for r in rows if r["outcome"] == "enrolled"] == ["zed"]
