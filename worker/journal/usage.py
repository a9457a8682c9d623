"""The usage check's side of a job's journal index: computes, and the usage records seen.

Owns: the queries that compare the voiceprints a job computed (the `computed` table, filled
from `Computed` journal records by `worker.journal.index`) with the usage records its owners'
lists showed (`usage_seen`, filled by `worker.job.usage_check` while the job runs and after it).
Both live in the index's SQLite database, so a million computes are checked in flat memory.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any

# One row of a query, under the index's lock, a database error raised as an OSError.
QueryOne = Callable[..., Any]


class UsageLedger:
    """The usage tables of a `JournalIndex`, which holds one and shares its connection and lock.

    `one(sql, *args)` is the index's single-row query (its lock, its error translation).
    """

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock, one: QueryOne) -> None:
        self._db = db
        self._lock = lock
        self._one = one

    def computed_count(self) -> int:
        return int(self._one("SELECT count(*) FROM computed")[0])

    def computed_owners(self) -> list[str]:
        with self._lock:
            return [
                r[0] for r in self._db.execute("SELECT DISTINCT owner FROM computed ORDER BY 1")
            ]

    def computed_per_owner(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT owner, count(*) FROM computed GROUP BY owner")
            return {str(owner): int(n) for owner, n in rows}

    def forget_usage(self, owner: str | None = None) -> None:
        """Forget the usage records seen (of one owner): its list is read again from page 1."""
        with self._lock, self._db:
            if owner is None:
                self._db.execute("DELETE FROM usage_seen")
            else:
                self._db.execute("DELETE FROM usage_seen WHERE owner = ?", (owner,))

    def saw_usage(self, owner: str, records: list[tuple[str, str]]) -> None:
        """Remember usage records listed for `owner`, as (record id, enrollment key).

        Kept whether or not the key is a compute of this job yet: a page read while the job
        runs may list a compute whose journal line is not indexed yet. A record seen twice
        (its list shifted between two page reads) is kept once, by its id.
        """
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO usage_seen (id, owner, key) VALUES (?, ?, ?)",
                [(rid, owner, key) for rid, key in records],
            )

    def usage_listed(self, owner: str) -> int:
        """How many distinct usage records of `owner`'s list have been seen (any job's)."""
        return int(self._one("SELECT count(*) FROM usage_seen WHERE owner = ?", owner)[0])

    def usage_found(self) -> int:
        """How many usage records seen bill a voiceprint this job computed."""
        return int(
            self._one("SELECT count(*) FROM usage_seen u JOIN computed c ON c.key = u.key")[0]
        )

    def charged(self, *, times: str, limit: int) -> tuple[int, list[str]]:
        """How many computed keys have `times` ("= 0", "> 1") usage records, and the first
        `limit` of them in key order."""
        query = {
            "= 0": "SELECT c.key FROM computed c WHERE NOT EXISTS "
            "(SELECT 1 FROM usage_seen u WHERE u.key = c.key)",
            "> 1": "SELECT c.key FROM computed c JOIN usage_seen u ON u.key = c.key "
            "GROUP BY c.key HAVING count(*) > 1",
        }[times]
        total = int(self._one(f"SELECT count(*) FROM ({query})")[0])  # noqa: S608 (fixed)
        with self._lock:
            rows = self._db.execute(f"{query} ORDER BY 1 LIMIT ?", (limit,)).fetchall()
        return total, [r[0] for r in rows]
