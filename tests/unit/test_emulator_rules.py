"""Pure emulator logic: handles, durations, model requirements, pagination, rate limit, faults,
voice detection, world config, persistence writes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from emulator.audio import ABS_FLOOR_RMS, voice_seconds
from emulator.config import UserConfig, WorldConfig, default_world
from emulator.faults import FaultInjector, FaultKind
from emulator.pagination import PageRequest, PaginationError, paginate, parse_page_request
from emulator.persist import Persister, atomic_write
from emulator.ratelimit import RateLimiter
from emulator.rules import (
    MODELS,
    alias_error,
    format_duration,
    format_time,
    handle_error,
    model_name,
    requirement_failure,
)


@pytest.mark.parametrize("handle", ["a", "a1", "a-b", "abc-123-x", "9" * 50])
def test_valid_handles(handle: str) -> None:
    assert handle_error(handle) is None


@pytest.mark.parametrize("handle", ["", "A", "a_b", "-a", "a-", "a--b", "a b", "a" * 51, 1])
def test_invalid_handles(handle: object) -> None:
    assert handle_error(handle)


def test_aliases() -> None:
    assert alias_error(None) is None and alias_error("x" * 100) is None
    assert alias_error("") and alias_error("x" * 101) and alias_error(3)


def test_wire_times_and_durations() -> None:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    assert format_time(moment) == "2026-01-01T00:00:00.000000Z"
    assert format_duration(7.5) == "PT7.500S" and format_duration(None) is None


def test_model_names() -> None:
    assert model_name("phone/v1") == "phone/v1"
    assert model_name({"handle": "phone", "version": "v1"}) == "phone/v1"
    assert model_name({"handle": "phone"}) is None


@pytest.mark.parametrize(
    ("model", "min_audios", "duration", "rate", "voice", "expect"),
    [
        ("phone/v1", 2, 5.0, 8000, 2.25, None),
        ("phone/v1", 2, 5.0, 8000, 2.2, "voice 2.20 s is below the 2.25 s"),
        ("phone/v1", 1, 5.0, 8000, 4.4, "(4.5 s ÷ minAudios 1)"),
        ("digital/v1", 1, 5.0, 8000, 5.0, "8000 Hz is below the 16000 Hz"),
        ("default/v1", 1, 120.5, 8000, 5.0, "above the 120 s maximum"),
        ("phone/v1", 1, None, None, None, "could not be decoded"),
    ],
)
def test_requirement_failures(
    model: str,
    min_audios: int,
    duration: float | None,
    rate: int | None,
    voice: float | None,
    expect: str | None,
) -> None:
    reason = requirement_failure("a1", MODELS[model], min_audios, duration, rate, voice)
    if expect is None:
        assert reason is None
    else:
        assert reason is not None and reason.startswith("audio a1: ") and expect in reason


@dataclass
class Item:
    handle: str
    alias: str | None
    created_at: datetime


ITEMS = [
    Item(f"h{i}", f"Alias {i}", datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=i))
    for i in range(5)
]


def _page(query: dict[str, str]) -> list[str]:
    req = parse_page_request(query, ["createdAt", "handle"])
    result = paginate(
        ITEMS,
        req,
        sort_value=lambda it, key: it.created_at if key == "createdAt" else it.handle,
        texts=lambda it: (it.handle, it.alias),
        date=lambda it: it.created_at,
    )
    return [it.handle for it in result.items]


def test_pagination_cuts_sorts_and_filters() -> None:
    assert _page({"page-size": "2", "page": "3"}) == ["h4"]
    assert _page({"sort": "-createdAt", "page-size": "2"}) == ["h4", "h3"]
    assert _page({"search": "alias 2"}) == ["h2"]
    assert _page({"after": "2026-01-01T00:01:00Z", "before": "2026-01-01T00:03:00.000000Z"}) == [
        "h1",
        "h2",
        "h3",
    ]


def test_pagination_headers() -> None:
    result = paginate(
        ITEMS,
        PageRequest(page=2, page_size=2),
        sort_value=lambda it, key: it.created_at,
        texts=lambda it: (it.handle,),
        date=lambda it: it.created_at,
    )
    assert result.headers() == {
        "Page-Total": "3",
        "Page-Size": "2",
        "Page-Current": "2",
        "Item-Total": "5",
    }


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"page": "0"}, r"page must be between 1 and 1000000, got 0"),
        ({"page": "9"}, r"page 9 is beyond the last page \(1\)"),
        ({"page-size": "51"}, r"page-size must be between 1 and 50, got 51"),
        ({"page-size": "0"}, r"page-size must be between 1 and 50, got 0"),
        ({"sort": "alias"}, r"sort must be one of createdAt, handle"),
        ({"after": "soon"}, r"after must be an ISO-8601 date-time, got 'soon'"),
        ({"page": "1.5"}, r"page must be an integer, got '1\.5'"),
    ],
)
def test_pagination_out_of_range(query: dict[str, str], message: str) -> None:
    with pytest.raises(PaginationError, match=message):
        _page(query)


def test_search_refused_where_unsupported() -> None:
    with pytest.raises(PaginationError, match=r"this list does not support search"):
        parse_page_request({"search": "x"}, ["computedAt"], searchable=False)


def test_token_bucket_burst_refill_and_retry_after() -> None:
    limiter = RateLimiter(rate=2.0, burst=3)
    assert [limiter.check("t", 0.0).allowed for _ in range(4)] == [True, True, True, False]
    refused = limiter.check("t", 0.1)
    assert not refused.allowed and refused.retry_after == 1
    assert refused.violated_retry_after  # came before the first Retry-After expired
    assert limiter.check("other", 0.1).allowed  # per token
    obeyed = limiter.check("t", 1.1)
    assert obeyed.allowed and not obeyed.violated_retry_after
    assert limiter.violations == 1 and limiter.limited == 2


def test_slow_rate_asks_for_longer_waits() -> None:
    limiter = RateLimiter(rate=0.2, burst=1)
    assert limiter.check("t", 0.0).allowed
    assert limiter.check("t", 0.0).retry_after == 5


def test_rate_zero_is_unlimited() -> None:
    limiter = RateLimiter(rate=0.0, burst=1)
    assert all(limiter.check("t", 0.0).allowed for _ in range(1000))


def test_faults_are_seeded_and_503_never_after_an_effect() -> None:
    a, b = FaultInjector(0.5, seed=42), FaultInjector(0.5, seed=42)
    seq_a = [a.decide("POST") for _ in range(500)]
    assert seq_a == [b.decide("POST") for _ in range(500)]
    faults = [f for f in seq_a if f is not None]
    assert 150 < len(faults) < 350
    assert {f.kind for f in faults} == set(FaultKind)
    assert any(f.after_effect for f in faults)
    assert not any(f.after_effect for f in faults if f.kind is FaultKind.ERROR_503)
    reads = [FaultInjector(1.0, seed=1).decide("GET") for _ in range(50)]
    assert not any(f and f.after_effect for f in reads)
    assert FaultInjector(0.0, seed=1).decide("POST") is None


def test_voice_detector_ignores_silence_and_faint_noise() -> None:
    frames = np.full(10, 0.03)
    assert voice_seconds(np.zeros(10), frames) == 0.0
    assert voice_seconds(np.full(10, ABS_FLOOR_RMS / 2), frames) == 0.0
    loud_and_quiet = np.array([0.3] * 4 + [0.01] * 6)  # quiet part is −30 dB under the loud
    assert voice_seconds(loud_and_quiet, frames) == pytest.approx(0.12)
    assert voice_seconds(np.array([]), np.array([])) == 0.0


def test_world_config_is_validated() -> None:
    world = default_world()
    assert {u.handle for u in world.users} == {"demo", "other"}
    with pytest.raises(ValidationError, match=r"user u is in unknown orgs \['ghost'\]"):
        WorldConfig(users=[UserConfig(handle="u", orgs=["ghost"])])
    with pytest.raises(ValidationError, match=r"an API key is given to more than one user"):
        WorldConfig(
            users=[
                UserConfig(handle="a", api_keys=["k"]),
                UserConfig(handle="b", api_keys=["k"]),
            ]
        )


def test_atomic_write_replaces_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "d" / "state.json"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]


async def test_persister_group_commits(tmp_path: Path) -> None:
    counter = {"n": 0}

    def snapshot() -> bytes:
        counter["n"] += 1
        return str(counter["n"]).encode()

    persister = Persister(tmp_path / "s.json", snapshot)
    await asyncio.gather(*(persister.commit() for _ in range(20)))
    assert 1 <= persister.writes < 20  # many changes, few writes
    assert (tmp_path / "s.json").read_bytes() == str(counter["n"]).encode()
    assert await Persister(None, snapshot).commit() is None  # no file: nothing to do


async def test_persister_reports_write_errors(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    persister = Persister(blocker / "s.json", lambda: b"{}")  # parent is a file
    with pytest.raises(OSError, match=r"File exists"):
        await persister.commit()


def test_a_request_already_on_its_way_when_the_429_left_is_no_violation() -> None:
    limiter = RateLimiter(rate=2.0, burst=1, in_flight_grace_s=0.1)
    assert limiter.check("t", 0.0).allowed
    assert not limiter.check("t", 0.0).allowed  # the 429: Retry-After 1 s
    in_flight = limiter.check("t", 0.05)  # sent before the client could read that 429
    assert not in_flight.allowed and not in_flight.violated_retry_after
    disobeying = limiter.check("t", 0.3)  # sent after it: disobeys
    assert disobeying.violated_retry_after
    # Refusing it again does not restart the grace: a client that ignores 429s is still seen.
    assert limiter.check("t", 0.35).violated_retry_after
    assert limiter.violations == 2
