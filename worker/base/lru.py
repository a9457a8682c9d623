"""A mapping that remembers a bounded number of keys: the least recently used one goes first.

Owns: the worker's one bounded cache. Preflight's per-path facts (`worker.manifest.preflight`,
so a streamed validation's memory stays flat) and the audio each in-process lock last saw
(`worker.enrollment.locks.AudioLocks`) are both kept in one. Not `functools.lru_cache`: both
callers store what they learned (and one forgets a key on the server's word) rather than
memoise a function.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, MutableMapping
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LruCache(MutableMapping[K, V]):
    """At most `limit` keys; reading or writing one makes it the most recent, the least
    recent is dropped beyond the limit. `in` and `peek` look without touching the order."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[K, V] = OrderedDict()

    def __getitem__(self, key: K) -> V:
        value = self._items[key]
        self._items.move_to_end(key)
        return value

    def __setitem__(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def __delitem__(self, key: K) -> None:
        del self._items[key]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._items))  # a snapshot: reading values moves keys meanwhile

    def __len__(self) -> int:
        return len(self._items)

    def peek(self, key: K) -> V | None:
        """The value of `key`, if held, leaving it where it is in the order."""
        return self._items.get(key)
