"""Issue 4's broken folder, through the worker: files that are not manifests go to failed/ with
their error file, bad rows fail alone (a file of only bad rows runs to its report all the same,
issue 30), good work goes on, and a file still being written is left alone."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import anyio

from tests.e2e.test_validate_cli import BROKEN, audio_root, expected, good_enrollment, write
from tests.emulator_harness import EmulatorHandle
from tests.fakeclock import FakeClock
from tests.scans import Scans
from tests.support import make_settings, report_of, run_once
from worker.api.client import ApiClient
from worker.queue.jobqueue import JobQueue
from worker.service import Service

__all__ = ["audio_root"]  # the fixture, shared with the validate tests

# Files that cannot be read as a manifest at all: the whole file goes to failed/.
UNREADABLE = {"bad-json.json", "empty.csv"}
# Manifests whose every enrollment is bad: a report, every row failed at preflight.
ALL_BAD = {"missing-audio.json", "low-rate.json", "duplicate-audio.json"}


def own_identity(name: str) -> str:
    return f"ann-{Path(name).stem}"


def own_identities(name: str, content: object) -> object:
    """`content` with its good rows' identity `ann` renamed to one of this file's own.

    In validate's folder several files ask for the voiceprint ann/main; through the worker the
    first to run would win and the others end `unchanged` or `conflict` in an order nobody can
    predict. With one identity per file, every good row has exactly one right outcome.
    """
    mine = own_identity(name)
    if isinstance(content, str):  # CSV: identity is the first column
        return "".join(
            mine + line[3:] if line.startswith("ann,") else line
            for line in content.splitlines(keepends=True)
        )
    if isinstance(content, dict):
        doc = copy.deepcopy(content)
        for row in doc.get("enrollments", [doc]):
            if isinstance(row, dict) and row.get("identity") == "ann":
                row["identity"] = mine
        return doc
    return content


async def test_broken_folder_through_the_worker(
    tmp_path: Path, audio_root: Path, emulator: EmulatorHandle
) -> None:
    queue = tmp_path / "queue"
    inbox = queue / "inbox"
    for name, (content, _) in BROKEN.items():
        write(inbox, name, own_identities(name, content))
    write(inbox, "good.json", {"enrollments": [good_enrollment("zed")]})
    # A producer writing in place, slowly: half a manifest now, the rest later. The queue runs
    # on a FakeClock that only this writer moves, and less than min_age between its writes.
    growing = inbox / "growing.json"
    whole = json.dumps({"enrollments": [good_enrollment("yan")]})
    growing.write_text(whole[:20])
    settings = make_settings(queue, emulator.base_url, audio_root=audio_root, min_age=0.3)
    clock = FakeClock()
    scans = Scans()
    job_queue = JobQueue(settings, clock=clock, on_scan=scans.saw)

    async def finish_writing() -> None:
        for cut in (40, 60, len(whole)):
            await scans.reach(scans.count + 2)  # seen, and seen unchanged
            clock.advance(0.1)
            growing.write_text(whole[:cut])
        await scans.reach(scans.count + 2)
        clock.advance(0.35)  # now it has rested min_age

    async with anyio.create_task_group() as tg, ApiClient.from_settings(settings) as client:
        tg.start_soon(finish_writing)
        code = await Service(settings, client, job_queue).run(once=True)
    assert code == 1

    failed = {p.name for p in (queue / "failed").iterdir()}
    assert len(failed) == 2 * len(UNREADABLE), failed  # each with its error file, nothing more
    for name in UNREADABLE:
        stem = Path(name).stem
        [error_file] = [f for f in failed if f.startswith(f"{stem}-") and f.endswith(".error.json")]
        error = json.loads((queue / "failed" / error_file).read_text())
        assert error["file"] == name and error["problems"], name
        assert any(f.startswith(f"{stem}-") and not f.endswith(".error.json") for f in failed)

    reports = {
        json.loads(p.read_text())["manifest"]: json.loads(p.read_text())
        for p in (queue / "reports").glob("*.report.json")
    }
    readable = set(BROKEN) - UNREADABLE
    assert set(reports) == readable | {"good.json", "growing.json"}
    for name in readable:
        rows = reports[name]["enrollments"]
        bad = [r for r in rows if r["outcome"] != "enrolled"]
        assert len(bad) == 1, (name, rows)  # exactly the one broken row, and it failed
        assert (reports[name]["requests"] == 0) == (name in ALL_BAD), name  # no request wasted
        assert bad[0]["outcome"] == "failed" and bad[0]["error"]["step"] == "preflight", bad
        # validate's message for that row ends with the reason the report gives.
        line = expected(name, tmp_path)
        line = line.replace('identity "ann"', f'identity "{own_identity(name)}"')
        assert bad[0]["error"]["reason"] and line.endswith(bad[0]["error"]["reason"]), (
            bad[0]["error"]["reason"],
            line,
        )
        good = [r for r in rows if r is not bad[0]]
        assert (not good) == (name in ALL_BAD), (name, good)
        assert all(r["outcome"] == "enrolled" for r in good), (name, good)
    # The slow writer's file was taken only once complete: it enrolled, it was not "bad JSON".
    assert [r["outcome"] for r in reports["growing.json"]["enrollments"]] == ["enrolled"]
    assert [r["outcome"] for r in reports["good.json"]["enrollments"]] == ["enrolled"]


async def test_preflight_failures_before_the_first_runnable_enrollment(
    tmp_path: Path, audio_root: Path, emulator: EmulatorHandle
) -> None:
    """Preflight streams ahead of the API work; it still spends no request on a manifest with
    nothing runnable, and one runnable enrollment after many bad ones still runs.

    A manifest whose every row is bad gets what a partly bad one gets (issue 30): its report,
    failures CSV and retry manifest in reports/, the file in done/, nothing in failed/.
    """
    queue = tmp_path / "queue"
    missing = [{"identity": f"gone-{i}", "audios": [f"gone/{i}.wav"]} for i in range(5)]
    write(queue / "inbox", "nothing.json", {"enrollments": missing})
    settings = make_settings(queue, emulator.base_url, audio_root=audio_root)
    await emulator.reset_stats()
    assert await run_once(settings) == 1
    assert list((queue / "failed").iterdir()) == []
    assert [p.name.startswith("nothing-") for p in (queue / "done").iterdir()] == [True]
    [job] = {p.name.split(".")[0] for p in (queue / "reports").iterdir()}
    assert sorted(p.name for p in (queue / "reports").iterdir()) == [
        f"{job}.failures.csv",
        f"{job}.report.json",
        f"{job}.retry.json",
    ]
    report = report_of(queue, "nothing")
    assert report["counts"]["failed"] == 5 and report["requests"] == 0
    places = sorted(r["source"] for r in report["enrollments"])  # in the order they ended
    assert places == [f"enrollments[{i}]" for i in range(5)]
    failures = (queue / "reports" / f"{job}.failures.csv").read_bytes()
    assert failures.startswith(b"\xef\xbb\xbfidentity,voiceprint,owner,space,model,")
    row = b"\r\ngone-4,main,demo,main,phone/v1,1,,true,conflict,delete,gone/4.wav,failed,"
    row += b"enrollments[4],preflight,"
    assert row in failures
    retry = json.loads((queue / "reports" / f"{job}.retry.json").read_text())
    assert [e["audios"] for e in retry["enrollments"]] == [[f"gone/{i}.wav"] for i in range(5)]
    by_route = (await emulator.stats())["requests"]["by_route"]
    assert set(by_route) == {"GET /user"}  # the start-up check only: no enrollment request

    write(queue / "inbox", "late.json", {"enrollments": [*missing, good_enrollment("zed")]})
    assert await run_once(settings) == 1  # the failed rows make the exit code 1
    rows = report_of(queue, "late")["enrollments"]
    assert [r["outcome"] for r in rows].count("failed") == 5
    assert [r["identity"] for r in rows if r["outcome"] == "enrolled"] == ["zed"]


async def test_a_model_typo_and_a_min_audios_error_are_retried_as_written(
    tmp_path: Path, audio_root: Path, emulator: EmulatorHandle
) -> None:
    """Issue 30: rows the parser rejects are in the retry manifest with their own values, to
    fix there; the retry file, dropped back as it is, runs (it is a manifest, not failed/)."""
    queue = tmp_path / "queue"
    typo = {"identity": "tia", "model": "phone/v9", "audios": ["ann/1.wav"]}
    too_many = {"identity": "ugo", "minAudios": 3, "audios": ["bob/1.ogg"]}
    write(queue / "inbox", "typos.json", {"enrollments": [typo, too_many]})
    settings = make_settings(queue, emulator.base_url, audio_root=audio_root)
    assert await run_once(settings) == 1
    [retry_file] = (queue / "reports").glob("typos-*.retry.json")
    retry = json.loads(retry_file.read_text())
    [tia, ugo] = retry["enrollments"]
    assert (tia["identity"], tia["model"], tia["audios"]) == ("tia", "phone/v9", ["ann/1.wav"])
    assert (ugo["identity"], ugo["minAudios"], ugo["audios"]) == ("ugo", 3, ["bob/1.ogg"])
    assert tia["comment"].startswith('failed at preflight (enrollments[0]): model "phone/v9"')

    # Fixed in place and dropped back as it is: it runs.
    tia["model"], ugo["minAudios"] = "phone/v1", 1
    write(queue / "inbox", "typos-fixed.json", retry)
    code = await run_once(settings)
    rows = report_of(queue, "typos-fixed")["enrollments"]
    assert code == 0, rows
    assert sorted((r["identity"], r["outcome"]) for r in rows) == [
        ("tia", "enrolled"),
        ("ugo", "enrolled"),
    ]
