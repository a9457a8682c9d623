"""A compact set of keys: 8-byte hashes in numpy arrays, not a dict of strings.

Owns: "have I seen this key, and where first?" for a million keys in flat, small memory.
Duplicate and conflict checks over a manifest of a million enrollments would otherwise hold a
million key strings and their places (~200 bytes each); here each key is a 64-bit BLAKE2b
hash in an open-addressing table of numpy arrays kept at most 70 % full: 12 bytes a slot
(hash and a 32-bit value), 20 with a tag, so ~17 MB per million keys (~29 MB tagged). Two
different keys sharing a 64-bit hash is possible in theory (about one chance in 3·10⁷ for a
million keys); it would report a false duplicate, never miss one, and the message names the
other place so a person can see it.
"""

from __future__ import annotations

import hashlib

import numpy as np

_EMPTY = 0
_INITIAL = 1021
_MAX_LOAD = 0.7
_GROWTH = 1.6
_REHASH_SLICE = 1 << 14


def key_hash(key: str) -> int:
    """The key's 64-bit hash (never 0, which marks an empty slot)."""
    digest = hashlib.blake2b(key.encode("utf-8", "backslashreplace"), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


class KeyIndex:
    """key → the first value stored for it (a non-negative int < 2³¹, e.g. a position).

    With `tagged`, each key also keeps the hash of a second string given with its first value
    (e.g. the identity that listed an audio first), which `tag_matches` compares later.
    """

    def __init__(self, *, tagged: bool = False, capacity: int = 0) -> None:
        """`capacity`: the keys expected, when known; sized for them at once, the table never
        grows (a growth holds the old and the new arrays together for a moment)."""
        self._tagged = tagged
        self._allocate(max(_INITIAL, int(capacity / _MAX_LOAD) + 1) | 1)
        self._count = 0

    def _allocate(self, size: int) -> None:
        self._keys = np.zeros(size, dtype=np.uint64)
        self._values = np.zeros(size, dtype=np.int32)
        self._tags = np.zeros(size if self._tagged else 0, dtype=np.uint64)

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return self._keys.nbytes + self._values.nbytes + self._tags.nbytes

    def _slot(self, h: int) -> int:
        keys = self._keys
        size = len(keys)
        i = h % size
        while True:
            k = int(keys[i])
            if k in (h, _EMPTY):
                return i
            i = i + 1 if i + 1 < size else 0

    def get(self, key: str) -> int | None:
        i = self._slot(key_hash(key))
        return None if int(self._keys[i]) == _EMPTY else int(self._values[i])

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def setdefault(self, key: str, value: int, tag: str = "") -> int:
        """The value stored for `key`, storing `value` (and `tag`) first if there is none."""
        h = key_hash(key)
        i = self._slot(h)
        if int(self._keys[i]) != _EMPTY:
            return int(self._values[i])
        self._keys[i] = h
        self._values[i] = value
        if self._tagged:
            self._tags[i] = key_hash(tag)
        self._count += 1
        if self._count > _MAX_LOAD * len(self._keys):
            self._grow()
        return value

    def tag_matches(self, key: str, tag: str) -> bool:
        """Whether `key` is stored with this `tag` (False when it is not stored)."""
        i = self._slot(key_hash(key))
        return int(self._keys[i]) != _EMPTY and int(self._tags[i]) == key_hash(tag)

    def _grow(self) -> None:
        keys, values, tags = self._keys, self._values, self._tags
        self._allocate(int(len(keys) * _GROWTH) | 1)
        # In slices: Python lists of every key at once would cost ~100 bytes a key for a moment.
        for start in range(0, len(keys), _REHASH_SLICE):
            part = slice(start, start + _REHASH_SLICE)
            used = np.flatnonzero(keys[part] != _EMPTY)
            old_tags = tags[part][used].tolist() if self._tagged else [0] * len(used)
            for h, v, t in zip(
                keys[part][used].tolist(), values[part][used].tolist(), old_tags, strict=True
            ):
                i = self._slot(h)
                self._keys[i] = h
                self._values[i] = v
                if self._tagged:
                    self._tags[i] = t
