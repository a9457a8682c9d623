"""Requests are the budget (design.md §8), counted by the emulator, route by route.

A fresh single-audio enrollment makes exactly 5 requests, one with k audios 3 + 2k; a re-run of
an enrolled identity reads at most twice; the usage check reads one page per 50 computes; the
worker asks `GET /user` once. Files above ENROLLER_INLINE_UPLOAD_MAX_BYTES take two steps. A
step that keeps failing costs (1 + ENROLLER_MAX_RETRIES) × 4 requests, then the enrollment fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from emulator.faults import Fault, FaultKind
from tests.e2e.test_engine_exactly_once import audio
from tests.emulator_harness import running_emulator
from tests.support import drop, make_settings, max_requests_per_step, report_of, run_once
from worker.api.client import ApiClient
from worker.job.seams import JobSeams
from worker.service import Service

SP = "/spaces/{owner}/{space}"
VP = f"{SP}/voiceprints/{{identity}}/{{voiceprint}}"
START = {"GET /user": 1}


def manifest(enrollments: dict[str, list[str]]) -> dict[str, Any]:
    rows = [{"identity": i, "audios": files} for i, files in enrollments.items()]
    return {"model": "phone/v1", "enrollments": rows}


def fresh(k: int, n: int = 1, *, inline: bool = True) -> dict[str, int]:
    """The routes n fresh enrollments of k audios each take, and the one usage page."""
    routes = {
        f"POST {SP}/identities": n,
        f"POST {SP}/audios": n * k,
        f"POST {SP}/voiceprints": n,
        f"POST {VP}/audios/{{audio}}": n * k,
        f"POST {VP}:compute": n,
        "GET /user/records/voiceprint": 1,
    }
    if not inline:
        routes[f"POST {SP}/audios/{{audio}}/file"] = n * k
    return routes


async def run_counted(queue: Path, name: str, doc: dict[str, Any], **settings: Any) -> Any:
    async with running_emulator() as emu:
        drop(queue, name, doc)
        assert await run_once(make_settings(queue, emu.base_url, **settings)) == 0
        return (await emu.stats())["requests"]["by_route"], emu


@pytest.mark.parametrize(("k", "per_enrollment"), [(1, 5), (2, 7), (3, 9)])
async def test_a_fresh_enrollment_costs_3_plus_2k_requests(
    tmp_path: Path, k: int, per_enrollment: int
) -> None:
    queue = tmp_path / "queue"
    files = [audio(queue, f"ann-{i}.wav").name for i in range(k)]
    by_route, _ = await run_counted(queue, "fresh.json", manifest({"ann": files}))
    assert by_route == {**START, **fresh(k)}
    assert sum(fresh(k).values()) - 1 == per_enrollment == 3 + 2 * k
    row = report_of(queue, "fresh")["enrollments"][0]
    assert row["outcome"] == "enrolled" and row["validated_by"] == "compute answer"


async def test_files_above_the_inline_limit_take_create_and_raw_upload(tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    name = audio(queue, "big.wav").name
    by_route, _ = await run_counted(
        queue, "big.json", manifest({"bob": [name]}), inline_upload_max_bytes=1000
    )
    assert by_route == {**START, **fresh(1, inline=False)}


async def test_validate_with_get_restores_the_separate_read(tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    name = audio(queue, "cat.wav").name
    by_route, _ = await run_counted(
        queue, "get.json", manifest({"cat": [name]}), validate_with_get=True
    )
    assert by_route == {**START, **fresh(1), f"GET {VP}": 1}
    assert report_of(queue, "get")["enrollments"][0]["validated_by"] == "get"


async def test_a_rerun_of_an_enrolled_identity_reads_at_most_twice(tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    doc = manifest({"dan": [audio(queue, "dan.wav").name]})
    async with running_emulator() as emu:
        settings = make_settings(queue, emu.base_url)
        drop(queue, "first.json", doc)
        assert await run_once(settings) == 0
        await emu.reset_stats()
        drop(queue, "again.json", doc)
        assert await run_once(settings) == 0
        stats = await emu.stats()
    by_route = stats["requests"]["by_route"]
    reads = {route: n for route, n in by_route.items() if route.startswith("GET ")}
    assert reads.pop("GET /user") == 1
    assert sum(reads.values()) <= 2, reads  # the voiceprint, and what it was computed from
    # The only write is the identity create that finds it exists (409); nothing is billed.
    assert {r: n for r, n in by_route.items() if r.startswith("POST ")} == {
        f"POST {SP}/identities": 1
    }
    assert report_of(queue, "again")["counts"]["unchanged"] == 1


class PostsUnavailable:
    """Every POST answered 503 before any effect; reads answered as usual."""

    def decide(self, method: str) -> Fault | None:
        return Fault(FaultKind.ERROR_503, after_effect=False) if method == "POST" else None


@pytest.mark.parametrize("max_retries", [0, 2])
async def test_a_step_that_keeps_failing_costs_max_requests_per_step(
    tmp_path: Path, max_retries: int
) -> None:
    queue = tmp_path / "queue"
    doc = manifest({"eve": [audio(queue, "eve.wav").name]})
    async with running_emulator() as emu:
        emu.emulator.faults = PostsUnavailable()  # type: ignore[assignment]
        drop(queue, "down.json", doc)
        settings = make_settings(queue, emu.base_url, max_retries=max_retries)
        assert await run_once(settings) == 1  # the failed row makes the exit code 1
        by_route = (await emu.stats())["requests"]["by_route"]
    # The first step, create identity, is sent 1 + max_retries times by the client, 4 times.
    assert by_route[f"POST {SP}/identities"] == max_requests_per_step(max_retries)
    assert by_route[f"POST {SP}/identities"] == (1 + max_retries) * 4
    row = report_of(queue, "down")["enrollments"][0]
    assert (row["outcome"], row["error"]["step"]) == ("failed", "identity"), row
    assert row["error"]["reason"].startswith("gave up after retries: "), row


async def test_the_usage_check_reads_one_page_per_50_computes(tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    ids = [f"cust-{i}" for i in range(60)]
    doc = manifest({i: [audio(queue, f"{i}.wav").name] for i in ids})
    by_route, _ = await run_counted(queue, "sixty.json", doc)
    assert by_route == {**START, **fresh(1, n=60), "GET /user/records/voiceprint": 2}


async def test_usage_pages_are_read_while_the_job_computes_not_all_after(tmp_path: Path) -> None:
    """Full pages are read during the run (so the check after the last compute reads only the
    rest), and still exactly one page per 50 computes; every compute found once. (A page read
    in flight when the last enrollment ended is let in, not cut off and asked again.)"""
    queue = tmp_path / "queue"
    ids = [f"cust-{i:03d}" for i in range(160)]
    doc = manifest({i: [audio(queue, f"{i}.wav").name] for i in ids})
    async with running_emulator() as emu:
        drop(queue, "many.json", doc)
        # 800 requests at 300/s: the run lasts long enough for the follower's ticks.
        settings = make_settings(queue, emu.base_url, rate_limit=300)
        async with ApiClient.from_settings(settings) as client:
            service = Service(settings, client, seams=JobSeams(usage_follow_every=0.05))
            assert await service.run(once=True) == 0
        seen = list(emu.requests)
    kinds = [
        "usage" if r.path.endswith("/records/voiceprint") else "compute"
        for r in seen
        if r.path.endswith("/records/voiceprint") or r.path.endswith(":compute")
    ]
    pages = [r.query for r in seen if r.path.endswith("/records/voiceprint")]
    assert kinds.count("usage") == 4, pages  # ceil(160 / 50); none read twice
    last_compute = len(kinds) - 1 - kinds[::-1].index("compute")
    assert kinds.index("usage") < last_compute  # page 1 was read while computes went on
    usage = report_of(queue, "many")["usage"]
    assert (usage["expected"], usage["found"]) == (160, 160)
    assert usage["missing"] == [] and usage["double_charged"] == []
