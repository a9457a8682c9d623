"""The enrollment engine end to end: queue → worker → emulator over real sockets → report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.audiogen import write_audio
from tests.emulator_harness import EmulatorHandle, running_emulator
from tests.support import (
    MODEL,
    drop,
    job_manifest,
    make_queue,
    make_settings,
    report_of,
    run_once,
)
from worker.config.settings import Settings
from worker.queue.discover import Candidate
from worker.queue.jobqueue import JobQueue
from worker.queue.paths import ClaimedJob


@pytest.fixture
def queue(tmp_path: Path) -> Path:
    return make_queue(tmp_path / "queue", [f"cust-{i}" for i in range(5)], step_s=0, folders=())


async def test_happy_path_enrolls_and_reports(queue: Path, emulator: EmulatorHandle) -> None:
    ids = [f"cust-{i}" for i in range(5)]
    drop(queue, "batch.json", job_manifest(ids, MODEL))
    settings = make_settings(queue, emulator.base_url)

    assert await run_once(settings) == 0

    report = report_of(queue, "batch")
    assert report["counts"]["enrolled"] == 5
    assert {r["identity"] for r in report["enrollments"]} == set(ids)
    assert all(r["state"] == "computed" for r in report["enrollments"])
    assert report["usage"]["found"] == 5 and not report["usage"]["double_charged"]
    assert report["credits_spent"] == 5
    # 5 requests per new customer (identity, audio with its file inline, voiceprint, add,
    # compute, whose answer validates) and one page of usage records: the report counts this
    # job's requests only.
    assert report["requests"] == 5 * 5 + 1
    assert list((queue / "done").glob("batch-*.json"))
    assert not list((queue / "inbox").iterdir())
    stats = await emulator.stats()
    assert stats["created"]["voiceprints"] == 5 and stats["created"]["computes"] == 5


async def test_redrop_is_unchanged_and_costs_nothing(queue: Path, emulator: EmulatorHandle) -> None:
    ids = [f"cust-{i}" for i in range(3)]
    settings = make_settings(queue, emulator.base_url)
    drop(queue, "first.json", job_manifest(ids, MODEL))
    assert await run_once(settings) == 0
    before = await emulator.stats()

    drop(queue, "again.json", job_manifest(ids, MODEL))
    assert await run_once(settings) == 0

    after = await emulator.stats()
    report = report_of(queue, "again")
    assert report["counts"]["unchanged"] == 3
    assert after["created"] == before["created"]  # no identity, audio, voiceprint, compute
    by_route = after["requests"]["by_route"]
    assert by_route.get("POST /spaces/{owner}/{space}/audios/{audio}/file", 0) == before[
        "requests"
    ]["by_route"].get("POST /spaces/{owner}/{space}/audios/{audio}/file", 0)


async def test_bad_rows_fail_alone_and_unrunnable_file_goes_to_failed(
    queue: Path, emulator: EmulatorHandle
) -> None:
    write_audio(queue / "audio" / "quiet.wav", voice_s=1.0, silence_s=4.0, samplerate=8000)
    drop(
        queue,
        "mixed.csv",
        "identity,audio,note\ncust-0,cust-0.wav,a\nBad Handle,cust-1.wav,b\n"
        "cust-2,missing.wav,c\ncust-3,quiet.wav,d\n",
    )
    drop(queue, "broken.json", "{not json")
    settings = make_settings(queue, emulator.base_url)

    assert await run_once(settings) == 1

    report = report_of(queue, "mixed")
    by_id = {r["identity"]: r for r in report["enrollments"]}
    assert by_id["cust-0"]["outcome"] == "enrolled"
    assert by_id["cust-2"]["error"]["step"] == "preflight"
    assert "missing.wav" in by_id["cust-2"]["error"]["reason"]
    assert by_id["cust-3"]["outcome"] == "failed"
    # The row the parser rejected is reported as written, not with an empty identity.
    assert by_id["Bad Handle"]["error"]["step"] == "preflight"
    assert by_id["Bad Handle"]["source"] == "line 3"
    # What a spreadsheet user opens: a BOM, the input's columns, then outcome and line.
    failures = next((queue / "reports").glob("mixed-*.failures.csv")).read_bytes()
    header, *rows = failures.split(b"\r\n")
    assert header == b"\xef\xbb\xbfidentity,audio,note,outcome,line,error_step,error"
    assert [r.split(b",")[:5] for r in rows if r] == [
        [b"Bad Handle", b"cust-1.wav", b"b", b"failed", b"3"],
        [b"cust-2", b"missing.wav", b"c", b"failed", b"4"],
        [b"cust-3", b"quiet.wav", b"d", b"failed", b"5"],
    ]
    retry = json.loads(next((queue / "reports").glob("mixed-*.retry.json")).read_text())
    # Every failed row, whatever the cause, can be fixed and retried: the bad handle too, as
    # written, with a comment saying what is wrong.
    assert [e["identity"] for e in retry["enrollments"]] == ["Bad Handle", "cust-2", "cust-3"]
    assert retry["enrollments"][0]["comment"].startswith("failed at preflight (line 3): identity")
    [error_file] = (queue / "failed").glob("broken-*.error.json")
    assert "broken.json" in error_file.read_text()


async def test_a_semicolon_export_gets_a_semicolon_failures_csv(
    queue: Path, emulator: EmulatorHandle
) -> None:
    """European Excel saves `;`: the failures CSV is written the same way, BOM first, so it
    opens in the spreadsheet that wrote the export (issue 30)."""
    drop(queue, "euro.csv", "identity;audio;note\ncust-0;cust-0.wav;1,5 kg\ncust-1;gone.wav;x\n")
    assert await run_once(make_settings(queue, emulator.base_url)) == 1
    failures = next((queue / "reports").glob("euro-*.failures.csv")).read_bytes()
    header, row, end = failures.split(b"\r\n")
    assert header == b"\xef\xbb\xbfidentity;audio;note;outcome;line;error_step;error"
    assert row.startswith(b"cust-1;gone.wav;x;failed;3;preflight;") and end == b""


async def test_credits_exhausted_midway_skips_the_rest(queue: Path) -> None:
    ids = [f"cust-{i}" for i in range(5)]
    async with running_emulator(credits=2) as emulator:
        drop(queue, "batch.json", job_manifest(ids, MODEL))
        settings = make_settings(queue, emulator.base_url, max_enrollments=1)
        assert await run_once(settings) == 1
        report = report_of(queue, "batch")
        assert report["counts"]["enrolled"] == 2
        assert report["counts"]["skipped"] == 3
        skipped = [r for r in report["enrollments"] if r["outcome"] == "skipped"]
        assert all("credits" in r["error"]["reason"] for r in skipped)
        stats = await emulator.stats()
        assert stats["requests"]["by_status"].get("429", 0) <= 1  # no spinning on compute


async def test_model_rejection_reports_the_reason(queue: Path, emulator: EmulatorHandle) -> None:
    # Voice a little short of the model's 4.5 s: near enough for the local check (within
    # ENROLLER_VOICE_MARGIN) to upload it, and the server's detector refuses it: 422 on add,
    # with its reason (its figure) and the local figure in the report.
    write_audio(queue / "audio" / "short.wav", voice_s=4.0, silence_s=1.0, samplerate=8000)
    drop(
        queue,
        "one.json",
        {"identity": "short-voice", "audios": ["short.wav"], "model": "phone/v1"},
    )
    settings = make_settings(queue, emulator.base_url)
    assert await run_once(settings) == 1
    [row] = report_of(queue, "one")["enrollments"]
    assert row["outcome"] == "failed"
    assert row["error"]["step"] == "add_audio" and row["error"]["status"] == 422
    assert (
        "short.wav" in row["error"]["reason"] and "voice 4.02 s is below" in row["error"]["reason"]
    )
    [local] = row["local_voice"]
    assert local["verdict"] == "near" and 3.825 <= local["voice_s"] < 4.5
    assert f"(voice measured locally: short.wav {local['voice_s']:.2f} s)" in row["error"]["reason"]


async def test_faults_still_enroll_everything(queue: Path) -> None:
    ids = [f"cust-{i}" for i in range(5)]
    async with running_emulator(fault_rate=0.2, seed=11) as emulator:
        drop(queue, "batch.json", job_manifest(ids, MODEL))
        settings = make_settings(queue, emulator.base_url)
        assert await run_once(settings) == 0
        report = report_of(queue, "batch")
        assert report["counts"]["enrolled"] == 5
        stats = await emulator.stats()
        assert stats["created"]["voiceprints"] == 5
        assert stats["created"]["audios"] == 5  # no audio created twice despite unknown outcomes
        assert stats["created"]["computes"] == 5


async def test_computed_with_another_model_is_conflict_and_untouched(
    queue: Path, emulator: EmulatorHandle
) -> None:
    settings = make_settings(queue, emulator.base_url)
    drop(queue, "first.json", job_manifest(["cust-0"], MODEL))
    assert await run_once(settings) == 0
    before = await emulator.stats()

    write_audio(queue / "audio" / "hq.wav", voice_s=5.0, samplerate=16000)
    drop(
        queue,
        "other-model.json",
        {"identity": "cust-0", "audios": ["hq.wav"], "model": "digital/v1"},
    )
    assert await run_once(settings) == 1

    [row] = report_of(queue, "other-model")["enrollments"]
    assert row["outcome"] == "conflict"
    assert "phone/v1" in row["error"]["reason"] and "digital/v1" in row["error"]["reason"]
    after = await emulator.stats()
    assert after["created"] == before["created"]  # nothing uploaded, created or computed


class EventQueue(JobQueue):
    """The worker's own queue, writing down in order when each job's hold on a slot begins
    (before the claim touches the disk) and ends (once the job has left active/)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.events: list[tuple[str, str]] = []

    async def claim(self, candidate: Candidate) -> ClaimedJob | None:
        self.events.append(("claiming", candidate.name))
        job = await super().claim(candidate)
        self.events.append(("claimed", candidate.name) if job else ("not claimed", candidate.name))
        return job

    async def finish(self, job: ClaimedJob) -> Path:
        done = await super().finish(job)
        self.events.append(("left", job.name))
        return done

    async def fail(self, job: ClaimedJob, *args: Any, **kwargs: Any) -> Path:
        failed = await super().fail(job, *args, **kwargs)
        self.events.append(("left", job.name))
        return failed


def most_at_once(events: list[tuple[str, str]]) -> int:
    """The most jobs between "claiming" and "left" at any point of the sequence."""
    holding: set[str] = set()
    most = 0
    for event, name in events:
        if event == "claiming":
            holding.add(name)
            most = max(most, len(holding))
        elif event in ("left", "not claimed"):
            holding.remove(name)
    return most


def test_most_at_once_counts_overlaps_by_order() -> None:
    # Two holds overlap when the second begins before the first has left, however briefly.
    assert most_at_once([("claiming", "a"), ("claimed", "a"), ("left", "a")]) == 1
    overlapped = [("claiming", "a"), ("claimed", "a"), ("claiming", "b"), ("left", "a")]
    assert most_at_once([*overlapped, ("claimed", "b"), ("left", "b")]) == 2
    assert most_at_once([("claiming", "a"), ("not claimed", "a"), ("claiming", "b")]) == 1


@pytest.mark.parametrize("max_jobs", [1, 2])
async def test_max_jobs_bounds_what_is_claimed(
    queue: Path, emulator: EmulatorHandle, max_jobs: int
) -> None:
    """Proved by the order of events, not by sampling active/: no claim of a job begins while
    `max_jobs` others are claimed and not yet out of active/."""
    names = [f"part-{i}.json" for i in range(4)]
    for i, name in enumerate(names):
        drop(queue, name, job_manifest([f"cust-{i}"], MODEL))
    settings = make_settings(queue, emulator.base_url, max_jobs=max_jobs)
    jobs = EventQueue(settings)
    assert await run_once(settings, jobs) == 0
    assert most_at_once(jobs.events) == max_jobs  # the bound held, and was reached
    claimed = [name for event, name in jobs.events if event == "claimed"]
    left = [name for event, name in jobs.events if event == "left"]
    assert sorted(claimed) == sorted(left) == names  # each job claimed once, each one ended
    assert len(list((queue / "reports").glob("part-*.report.json"))) == len(names)


async def test_an_audio_the_server_lost_is_found_or_made_again_not_a_failure(
    queue: Path, emulator: EmulatorHandle
) -> None:
    # A long-lived worker remembers which audio it made from each file. The service then
    # loses it (restored from a backup, deleted by an operator; here: a restart without state).
    settings = make_settings(queue, emulator.base_url)
    drop(queue, "first.json", job_manifest(["cust-0"], MODEL))
    assert await run_once(settings) == 0
    await emulator.restart()
    drop(queue, "again.json", job_manifest(["cust-0"], MODEL))
    assert await run_once(settings) == 0
    [row] = report_of(queue, "again")["enrollments"]
    assert (row["identity"], row["outcome"]) == ("cust-0", "enrolled"), row
    stats = await emulator.stats()
    assert stats["created"]["audios"] == 1  # made once on the new server, not twice
