"""The one bounded cache: the least recently used key goes first; `in` and `peek` only look."""

from __future__ import annotations

from worker.base.lru import LruCache


def test_the_least_recently_used_key_is_dropped_beyond_the_limit() -> None:
    cache: LruCache[str, int] = LruCache(2)
    cache["a"], cache["b"] = 1, 2
    assert cache["a"] == 1  # a read makes "a" the most recent
    cache["c"] = 3
    assert list(cache) == ["a", "c"] and len(cache) == 2
    cache["a"] = 10  # so does a write
    cache["d"] = 4
    assert dict(cache) == {"a": 10, "d": 4}


def test_in_and_peek_leave_the_order_alone() -> None:
    cache: LruCache[str, int] = LruCache(2)
    cache["a"], cache["b"] = 1, 2
    assert "a" in cache and cache.peek("a") == 1 and cache.peek("zz") is None
    cache["c"] = 3
    assert "a" not in cache and cache.get("a") is None
    del cache["b"]
    assert dict(cache) == {"c": 3}
