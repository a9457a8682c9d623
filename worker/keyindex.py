"""A compact set of keys: 8-byte hashes in numpy arrays, not a dict of strings.

Owns: "have I seen this key, and where first?" for a million keys in flat, small memory.
Duplicate and conflict checks over a manifest of a million enrollments would otherwise hold a
million key strings and their places (~200 bytes each); here each key is a 64-bit BLAKE2b
hash in an open-addressing table of two numpy arrays, 16 bytes a slot at most half full, so
about 32 MB per million keys. Two different keys sharing a 64-bit hash is possible in theory
(about one chance in 3·10⁷ for a million keys); it would report a false duplicate, never miss
one, and the report names both places so a person sees it.
"""

from __future__ import annotations

import hashlib

import numpy as np

_EMPTY = 0
_INITIAL = 1 << 10


def key_hash(key: str) -> int:
    """The key's 64-bit hash (never 0, which marks an empty slot)."""
    digest = hashlib.blake2b(key.encode("utf-8", "backslashreplace"), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


class KeyIndex:
    """key → the first value stored for it (an int, e.g. a manifest position)."""

    def __init__(self) -> None:
        self._keys = np.zeros(_INITIAL, dtype=np.uint64)
        self._values = np.zeros(_INITIAL, dtype=np.int64)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def _slot(self, h: int) -> int:
        mask = len(self._keys) - 1
        i = h & mask
        keys = self._keys
        while True:
            k = int(keys[i])
            if k in (h, _EMPTY):
                return i
            i = (i + 1) & mask

    def get(self, key: str) -> int | None:
        i = self._slot(key_hash(key))
        return None if int(self._keys[i]) == _EMPTY else int(self._values[i])

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def setdefault(self, key: str, value: int) -> int:
        """The value stored for `key`, storing `value` first if there is none."""
        h = key_hash(key)
        i = self._slot(h)
        if int(self._keys[i]) != _EMPTY:
            return int(self._values[i])
        self._keys[i] = h
        self._values[i] = value
        self._count += 1
        if 2 * self._count > len(self._keys):
            self._grow()
        return value

    def _grow(self) -> None:
        keys, values = self._keys, self._values
        used = keys != _EMPTY
        self._keys = np.zeros(2 * len(keys), dtype=np.uint64)
        self._values = np.zeros(2 * len(keys), dtype=np.int64)
        for h, v in zip(keys[used].tolist(), values[used].tolist(), strict=True):
            i = self._slot(h)
            self._keys[i] = h
            self._values[i] = v
