"""The emulator's diagnostics for benchmarks: when it refused, how its answers spread, how late
its loop woke. They explain a run's 429s; they never change an answer."""

from __future__ import annotations

import pytest

from emulator.stats import Stats


def test_throttles_answers_per_second_and_loop_lag_are_reported() -> None:
    stats = Stats()
    stats.started()
    assert stats.first_request_at is not None
    stats.finished("GET /user", "200")
    stats.throttled("POST /spaces/{owner}/{space}/identities")
    stats.loop_woke(0.004)
    stats.loop_woke(0.040)
    wire = stats.to_wire({})
    assert wire["rate_limited"] == 1
    assert [t["route"] for t in wire["throttled_at"]] == ["POST /spaces/{owner}/{space}/identities"]
    assert wire["per_second"] == [1]
    lag = wire["loop_lag"]
    assert lag["max_ms"] == pytest.approx(40.0)
    assert lag["wakeups_over_ms"] == {"5": 1, "10": 1, "20": 1, "33": 1, "50": 0}
    assert [s["ms"] for s in lag["stalls"]] == [40.0]
    stats.reset()
    assert stats.to_wire({})["loop_lag"]["max_ms"] == 0.0
