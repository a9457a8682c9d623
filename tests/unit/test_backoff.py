"""Backoff arithmetic: full jitter under an exponential ceiling, bounded by count and time."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.api.backoff import RetryPolicy, backoff_ceiling, full_jitter, next_delay


def test_ceiling_doubles_then_caps() -> None:
    ceilings = [backoff_ceiling(n, base=0.25, cap=3.0) for n in range(6)]
    assert ceilings == [0.25, 0.5, 1.0, 2.0, 3.0, 3.0]


def test_huge_retry_numbers_do_not_overflow() -> None:
    assert backoff_ceiling(10_000, base=0.25, cap=3.0) == 3.0


def test_negative_retry_is_a_bug() -> None:
    with pytest.raises(ValueError, match=r"retry must be >= 0"):
        backoff_ceiling(-1, base=1, cap=1)


@given(retry=st.integers(0, 50), rand=st.floats(0, 1, exclude_max=True))
def test_full_jitter_is_within_zero_and_the_ceiling(retry: int, rand: float) -> None:
    delay = full_jitter(retry, rand, base=0.25, cap=10)
    assert 0 <= delay < backoff_ceiling(retry, base=0.25, cap=10) or delay == 0


def test_full_jitter_spans_the_whole_range() -> None:
    assert full_jitter(2, 0.0, base=1, cap=100) == 0.0
    assert full_jitter(2, 0.5, base=1, cap=100) == 2.0
    assert full_jitter(2, 0.999, base=1, cap=100) == pytest.approx(3.996)


def test_next_delay_stops_after_max_retries() -> None:
    policy = RetryPolicy(max_retries=3, max_time=1000, base=1, cap=100)
    assert [next_delay(policy, n, 0.0, 0.5) for n in range(5)] == [0.5, 1.0, 2.0, None, None]


def test_next_delay_stops_when_the_wait_would_pass_max_time() -> None:
    policy = RetryPolicy(max_retries=10, max_time=10, base=1, cap=100)
    assert next_delay(policy, 2, elapsed=7.0, rand=0.5) == 2.0  # ends at 9 s
    assert next_delay(policy, 2, elapsed=8.5, rand=0.5) is None  # would end at 10.5 s


def test_zero_retries_means_never() -> None:
    assert next_delay(RetryPolicy(max_retries=0), 0, 0.0, 0.0) is None
