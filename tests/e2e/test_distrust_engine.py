"""Issue 27, points 6 and 7, end to end: a run through a middlebox (tests/misbehaving.py) that
loses or spoils the answers of billed computes, or answers them about another voiceprint.
The bound each test states: one compute sent per voiceprint, one usage record per voiceprint,
and `credits_spent` equal to the records, whatever the answers were.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.emulator_harness import running_emulator
from tests.misbehaving import (
    Act,
    Upstream,
    lost_after_forwarding,
    misbehaving,
    replaced_after_forwarding,
    rewritten,
    status_with,
)
from tests.support import (
    MODEL,
    drop,
    job_manifest,
    make_queue,
    make_settings,
    max_requests_per_step,
    report_of,
    run_once,
)

IDS = ["ann", "bob", "cid"]
COMPUTE = r":compute$"


def another_voiceprint(up: Upstream) -> web.Response:
    """The compute's true answer, rewritten to be about another identity's voiceprint (a
    cache keyed without the path): computed, with the right model and audio count."""
    body = json.loads(up.body)
    body["identity"] = {"handle": "someone-else", "alias": None}
    body["handle"] = "their-voiceprint"
    return up.respond(body=json.dumps(body).encode())


CASES: dict[str, Act] = {
    "connection lost after it took effect": lost_after_forwarding(),
    "an HTML error page with 200": replaced_after_forwarding(b"<html>oops</html>"),
    "a body of the wrong shape": replaced_after_forwarding(b'{"handle": 5}'),
    "an unknown state": rewritten(
        lambda up: up.respond(body=up.body.replace(b'"computed"', b'"processing"'))
    ),
    "an answer about another voiceprint": rewritten(another_voiceprint),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_an_unusable_compute_answer_is_settled_by_a_read(tmp_path: Path, case: str) -> None:
    queue = make_queue(tmp_path / "q", IDS)
    drop(queue, "batch.json", job_manifest(IDS, MODEL))
    async with running_emulator() as emu, misbehaving(emu.root_url) as proxy:
        proxy.on("POST", COMPUTE, CASES[case])
        assert await run_once(make_settings(queue, proxy.base_url)) == 0
        stats = await emu.stats()
    computes = [path for method, path in proxy.seen if path.endswith(":compute")]
    assert len(computes) == len(IDS)  # one compute per voiceprint, never resent blind
    report: dict[str, Any] = report_of(queue, "batch")
    rows = report["enrollments"]
    assert {r["outcome"] for r in rows} == {"enrolled"}, rows
    settled = "settled read" if case == "an unknown state" else "read after unknown outcome"
    assert {r["validated_by"] for r in rows} == {settled}
    assert stats["credits_used"] == {"demo": len(IDS)}
    assert report["credits_spent"] == len(IDS)  # what the usage records show
    usage = report["usage"]
    assert usage["expected"] == usage["found"] == len(IDS) and not usage["double_charged"]


# --- points 3 and 4: bounded waits and retries ---------------------------------------------


async def test_a_retry_after_too_long_checkpoints_the_once_run_with_exit_75(
    tmp_path: Path,
) -> None:
    # Bound: ENROLLER_MAX_RETRY_AFTER (300 s) against the server's 999999 s; no wait at all.
    queue = make_queue(tmp_path / "q", IDS)
    drop(queue, "batch.json", job_manifest(IDS, MODEL))
    async with running_emulator() as emu, misbehaving(emu.root_url) as proxy:
        rule = proxy.on("POST", COMPUTE, status_with(429, {"Retry-After": "999999"}, "later"))
        settings = make_settings(queue, proxy.base_url)
        assert await run_once(settings) == 75  # EX_TEMPFAIL: try again later
        assert [p.name for p in (queue / "active").iterdir()] != []  # checkpointed, kept
        assert list((queue / "reports").glob("*.report.json")) == []
        rule.times = 0  # the API stops asking to wait
        assert await run_once(settings) == 0
        stats = await emu.stats()
    report = report_of(queue, "batch")
    assert {r["outcome"] for r in report["enrollments"]} == {"enrolled"}
    assert stats["credits_used"] == {"demo": len(IDS)} and report["credits_spent"] == len(IDS)
    assert list((queue / "active").iterdir()) == []


async def test_an_unreadable_retry_after_on_one_identity_does_not_stop_the_others(
    tmp_path: Path,
) -> None:
    # Bound: the call's retry budget (max_retries 2) per attempt, MAX_ATTEMPTS_PER_STEP
    # attempts of the step: ann fails, bob and cid enroll.
    queue = make_queue(tmp_path / "q", IDS)
    drop(queue, "batch.json", job_manifest(IDS, MODEL))
    async with running_emulator() as emu, misbehaving(emu.root_url) as proxy:
        proxy.on("POST", r"/ann/[^/]+:compute$", status_with(429, {"Retry-After": "soon"}, "x"))
        settings = make_settings(queue, proxy.base_url, max_retries=2)
        assert await run_once(settings) == 1
    rows = {r["identity"]: r for r in report_of(queue, "batch")["enrollments"]}
    assert rows["bob"]["outcome"] == rows["cid"]["outcome"] == "enrolled"
    assert rows["ann"]["outcome"] == "failed" and rows["ann"]["error"]["step"] == "compute"
    sent = [p for m, p in proxy.seen if p.endswith(":compute") and "/ann/" in p]
    assert 0 < len(sent) <= max_requests_per_step(2)


# --- point 9: any file name --------------------------------------------------------------------


async def test_a_manifest_whose_name_is_not_utf8_runs_and_is_echoed_escaped(tmp_path: Path) -> None:
    queue = make_queue(tmp_path / "q", ["ann"])
    name = os.fsdecode(b"caf\xe9.json")  # a Latin-1 name from a Windows share
    drop(queue, name, job_manifest(["ann"], MODEL))
    async with running_emulator() as emu:
        assert await run_once(make_settings(queue, emu.base_url)) == 0
    report = report_of(queue, "caf")
    assert report["manifest"] == "caf\\udce9.json"  # escaped, never a serialization error
    assert {r["outcome"] for r in report["enrollments"]} == {"enrolled"}
    assert [p.suffix for p in (queue / "done").iterdir()] == [".json"]
    assert list((queue / "failed").iterdir()) == []


def processing(up: Upstream) -> web.Response:
    """The emulator's true answer with its state replaced by one the contract lacks."""
    return up.respond(body=up.body.replace(b'"computed"', b'"processing"'))


VOICEPRINT_READ = r"/voiceprints/[^/]+/[^/:]+$"


@pytest.mark.parametrize("reads", [2, None])
async def test_an_unknown_state_is_not_settled_yet(tmp_path: Path, reads: int | None) -> None:
    # Bound: ENROLLER_PROCESSING_TIMEOUT (1 s here); one compute per voiceprint either way.
    # `reads`: how many reads of each voiceprint say "processing" (None: every one).
    queue = make_queue(tmp_path / "q", IDS)
    drop(queue, "batch.json", job_manifest(IDS, MODEL))
    async with running_emulator() as emu, misbehaving(emu.root_url) as proxy:
        proxy.on("POST", COMPUTE, rewritten(processing))
        times = None if reads is None else reads * len(IDS)
        proxy.on("GET", VOICEPRINT_READ, rewritten(processing), times=times)
        settings = make_settings(queue, proxy.base_url, processing_timeout=1.0)
        assert await run_once(settings) == (0 if reads else 1)
        stats = await emu.stats()
    computes = [path for method, path in proxy.seen if path.endswith(":compute")]
    assert len(computes) == len(IDS)
    report = report_of(queue, "batch")
    rows = report["enrollments"]
    if reads:
        assert {r["outcome"] for r in rows} == {"enrolled"}
    else:
        assert {r["outcome"] for r in rows} == {"failed"}
        assert {r["state"] for r in rows} == {"processing"}  # reported with the value
        assert all("still processing" in r["error"]["reason"] for r in rows)
    assert stats["credits_used"] == {"demo": len(IDS)} and report["credits_spent"] == len(IDS)
    usage = report["usage"]
    assert usage["expected"] == usage["found"] == len(IDS) and not usage["double_charged"]


async def test_a_long_wait_asked_at_the_first_request_exits_75_without_waiting(
    tmp_path: Path,
) -> None:
    queue = make_queue(tmp_path / "q", IDS)
    drop(queue, "batch.json", job_manifest(IDS, MODEL))
    async with running_emulator() as emu, misbehaving(emu.root_url) as proxy:
        proxy.on("GET", r"/v1/user$", status_with(429, {"Retry-After": "999999"}, "later"))
        assert await run_once(make_settings(queue, proxy.base_url)) == 75
    assert [p.name for p in (queue / "inbox").iterdir()] == ["batch.json"]  # nothing claimed


async def test_a_long_wait_asked_during_the_usage_check_checkpoints_the_job(
    tmp_path: Path,
) -> None:
    queue = make_queue(tmp_path / "q", IDS)
    drop(queue, "batch.json", job_manifest(IDS, MODEL))
    async with running_emulator() as emu, misbehaving(emu.root_url) as proxy:
        wait = status_with(429, {"Retry-After": "999999"}, "later")
        rule = proxy.on("GET", r"/records/voiceprint$", wait)
        settings = make_settings(queue, proxy.base_url)
        assert await run_once(settings) == 75
        assert list((queue / "reports").glob("*.report.json")) == []  # not reported yet
        rule.times = 0
        assert await run_once(settings) == 0
        stats = await emu.stats()
    report = report_of(queue, "batch")
    assert {r["outcome"] for r in report["enrollments"]} == {"enrolled"}  # nothing redone
    assert stats["credits_used"] == {"demo": len(IDS)}
    assert report["usage"]["found"] == len(IDS) and report["usage"].get("error") is None
