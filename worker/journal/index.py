"""A job's journal indexed in SQLite: what is done and what was computed, without a set in memory.

Owns: the per-key questions about one journal — is this enrollment done (resume), its outcome
and where its record is (reports), which voiceprints the job computed and how often each was
charged (the usage check), what a derivation made (derived uploads) — answered in flat memory
however many enrollments the job has. The JSON-lines journal stays the one truth; the index is
a cache of a prefix of it, and is rebuilt from it whenever it does not match.

Why SQLite (the standard library's `sqlite3`): these are point lookups, counts and ordered
walks by key over up to millions of keys. A set or dict of key strings costs 100–200 bytes a
key for the whole run (what issue 18 removes); scanning the journal once per question would
be quadratic; a hashed set (worker/manifest/keyindex.py) may answer a false "done", which would skip
an enrollment. A B-tree on disk answers exactly, in microseconds, through a page cache of a few MB.

Where: on local disk (the system's temporary directory, `TMPDIR`), not beside the journal:
the queue may be a shared volume (NFS, EFS), where SQLite's locks cannot be fully trusted. The
index belongs to whichever process holds the job; another host taking the job over builds its
own. Only where the temporary directory is not writable (a read-only root filesystem with no
writable /tmp mounted) does it fall back to a file beside the journal, with a warning.

Crash safety: indexed rows and the journal offset they reach commit in one transaction
(rollback journal, synchronous=FULL), so after kill -9 or a power cut the index covers an
exact prefix of the journal and the rest is read again. An index that does not match its
journal (another journal at that path: its first line differs; a shorter journal; an
unreadable database) is rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import structlog

from worker.base.errors import JobMustCheckpoint
from worker.journal.index_files import default_directory, first_line, line_end, sweep_stale
from worker.journal.records import (
    EnrollmentOutcome,
    JournalCorrupt,
    JournalState,
    Outcome,
    parse_record,
    read_lines,
)
from worker.journal.usage import UsageLedger

log = structlog.get_logger(__name__)

COMMIT_EVERY = 20_000  # journal lines per transaction while indexing
PAGE = 2_000  # outcome rows read per query while walking them
# SQLite's page cache, per connection (KiB). Its default (2 000 KiB) fills as the index grows
# and is never given back: memory that grew with the job. Lookups read pages the kernel caches
# anyway (a lookup in a million keys: ~13 µs at 64 KiB or at 2 MB), so a small fixed cache
# keeps the index's memory flat at no cost in speed.
CACHE_KIB = 256


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    id INTEGER PRIMARY KEY CHECK (id = 0), journal TEXT NOT NULL, head BLOB NOT NULL,
    upto INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outcome (
    key TEXT PRIMARY KEY, at INTEGER NOT NULL, size INTEGER NOT NULL, outcome TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS outcome_at ON outcome (at);
CREATE TABLE IF NOT EXISTS computed (key TEXT PRIMARY KEY, owner TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS usage_seen (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, key TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS usage_seen_key ON usage_seen (key);
CREATE TABLE IF NOT EXISTS derived (
    derivation TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER NOT NULL) WITHOUT ROWID;
"""
_TABLES = ("meta", "outcome", "computed", "derived", "usage_seen")


class JournalIndexFailed(JobMustCheckpoint):
    """SQLite failed under the index (a full or failing disk): the job checkpoints.

    Raised by `JournalIndex` in place of the `sqlite3.Error` (its text is in the message and
    `reason`; `disk_full` says whether SQLite found the disk full). The journal is still the
    truth and intact, so the job's boundary keeps it and a later start resumes
    (worker/job/boundary.py). Not an `OSError`: nobody may take it for a file's problem.
    """

    def __init__(self, exc: sqlite3.Error) -> None:
        self.reason = str(exc)
        self.disk_full = "full" in self.reason.lower()
        super().__init__(f"journal index: {self.reason}")


class JournalIndex:
    """One journal's index; thread-safe (one connection behind a lock, used from threads).

    Its `ledger` (usage.py) answers the usage check, on the same connection and lock.
    """

    def __init__(
        self,
        journal: Path,
        directory: Path | None = None,
        *,
        commit_every: int = COMMIT_EVERY,
        page: int = PAGE,
        committed: Callable[[], None] | None = None,  # after each transaction (a crash point)
    ) -> None:
        self.journal = journal
        self._commit_every, self._page, self._committed = commit_every, page, committed
        self._lock = threading.Lock()
        self._reader: Any = None  # the journal opened for reading records back, lazily
        digest = hashlib.sha256(str(journal.resolve()).encode()).hexdigest()[:32]
        local = directory if directory is not None else default_directory()
        # Local disk first; beside the journal only where that is not writable (a container's
        # read-only root filesystem without a writable /tmp mounted).
        places = [local / f"{digest}.sqlite", journal.with_name(journal.name + ".index.sqlite")]
        for place in places:
            self.path = place
            try:
                if place.parent == local:
                    local.mkdir(mode=0o700, parents=True, exist_ok=True)
                    sweep_stale(local)
                self._db = self._connect()
                self._check()
                break
            except (OSError, sqlite3.Error) as exc:
                if place == places[-1] and isinstance(exc, sqlite3.Error):
                    raise JournalIndexFailed(exc) from None
                if place == places[-1]:
                    raise exc from None
                log.warning(
                    "journal_index_beside_journal",
                    reason=f"{local} is not writable: {exc}",
                    hint="mount a writable local /tmp (or set TMPDIR) for the journal index",
                )
        self.ledger = ledger = UsageLedger(self._db, self._lock, self._one)
        self.computed_count = ledger.computed_count
        self.computed_owners = ledger.computed_owners
        self.computed_per_owner = ledger.computed_per_owner
        self.forget_usage = ledger.forget_usage
        self.saw_usage = ledger.saw_usage
        self.usage_listed = ledger.usage_listed
        self.usage_found = ledger.usage_found
        self.charged = ledger.charged

    def _connect(self) -> sqlite3.Connection:
        for attempt in (1, 2):
            db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            try:
                # A rollback journal, not WAL: WAL needs shared memory, which the fallback
                # place (a shared volume) may not give; FULL keeps a power cut from corrupting
                # it, at a few fsyncs per COMMIT_EVERY lines.
                db.execute("PRAGMA journal_mode=DELETE")
                db.execute("PRAGMA synchronous=FULL")
                db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")  # negative: KiB, not pages
                db.executescript(_SCHEMA)
                return db
            except sqlite3.DatabaseError as exc:
                db.close()
                cannot_write = "unable to open" in str(exc) or "readonly" in str(exc)
                if cannot_write or attempt == 2:
                    raise  # the place, not the file: the caller tries the next place
                log.warning("journal_index_unreadable_rebuilt", index=str(self.path))
                self._delete_files()
        raise AssertionError("unreachable")

    def _check(self) -> None:
        """Keep the index only if it covers a prefix of this very journal."""
        row = self._db.execute("SELECT journal, head, upto FROM meta").fetchone()
        head = first_line(self.journal)
        if row is not None and row[2] > 0:
            journal, indexed_head, upto = row
            if (
                journal == str(self.journal)
                and indexed_head == head
                and line_end(self.journal, upto)
            ):
                return
            log.info("journal_index_rebuilt", index=str(self.path), journal=str(self.journal))
        with self._db:
            for table in _TABLES:
                self._db.execute(f"DELETE FROM {table}")  # noqa: S608 (fixed names)
            self._db.execute(
                "INSERT INTO meta (id, journal, head, upto) VALUES (0, ?, ?, 0)",
                (str(self.journal), head),
            )

    # --- life -----------------------------------------------------------------------------

    def __enter__(self) -> JournalIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def remove(self) -> None:
        """Close and delete: the job has ended here, nobody resumes it from this index."""
        self.close()
        self._delete_files()

    def _delete_files(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.path}{suffix}")

    # --- building -------------------------------------------------------------------------

    @property
    def upto(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT upto FROM meta").fetchone()[0])

    def catch_up(self, *, live: bool = False) -> Counter[str]:
        """Index every whole journal line after the indexed prefix (blocking: reads); returns
        the computes it added, per owner.

        `live`: the job is still appending, so a last line without its newline is one being
        written, not a torn one, and is left for the next call without a warning.
        """
        return self.load(None, live=live)

    def load(self, state: JournalState | None, *, live: bool = False) -> Counter[str]:
        """Index the journal; with `state`, also replay every record into it (blocking).

        Resume needs both: the whole journal into the state (memory of unfinished enrollments)
        and its unindexed tail into the index; one read does the two. Returns the computes
        newly indexed, per owner (a compute journaled twice counts once).
        """
        added: Counter[str] = Counter()
        start = 0 if state is not None else self.upto
        upto = self.upto
        batch = _Batch()
        try:
            for offset, line, number in read_lines(self.journal, start, live=live):
                if state is not None:
                    state.apply(parse_record(line, self.journal, number))
                if offset >= upto:
                    batch.add(offset, line, self.journal, number)
                    if batch.lines >= self._commit_every:
                        added += self._commit(batch)
                        batch = _Batch()
            added += self._commit(batch)
        except sqlite3.Error as exc:
            raise JournalIndexFailed(exc) from None
        return added

    def _commit(self, batch: _Batch) -> Counter[str]:
        added: Counter[str] = Counter()
        if batch.end is None:
            return added
        with self._lock, self._db:
            db = self._db
            db.executemany("INSERT OR IGNORE INTO outcome VALUES (?, ?, ?, ?)", batch.outcomes)
            for owner in {o for _, o in batch.computed}:
                rows = [(k, o) for k, o in batch.computed if o == owner]
                cursor = db.executemany(
                    "INSERT OR IGNORE INTO computed (key, owner) VALUES (?, ?)", rows
                )
                added[owner] += cursor.rowcount
            db.executemany("INSERT OR REPLACE INTO derived VALUES (?, ?, ?)", batch.derived)
            db.execute("UPDATE meta SET upto = ?", (batch.end,))
        if self._committed is not None:
            self._committed()
        return added

    # --- questions ------------------------------------------------------------------------

    def _one(self, sql: str, *args: object) -> Any:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchone()
            except sqlite3.Error as exc:
                raise JournalIndexFailed(exc) from None

    def __contains__(self, key: object) -> bool:
        """Whether `key` has an outcome: resume skips it (`JobInput.planned(skip=index)`)."""
        return self._one("SELECT 1 FROM outcome WHERE key = ?", key) is not None

    def status(self, key: str) -> str | None:
        """The outcome of `key` ("enrolled", "failed"…), None when it has none."""
        row = self._one("SELECT outcome FROM outcome WHERE key = ?", key)
        return None if row is None else str(row[0])

    def outcome(self, key: str) -> EnrollmentOutcome | None:
        """The first outcome record of `key`, read back from the journal."""
        row = self._one("SELECT at, size FROM outcome WHERE key = ?", key)
        return None if row is None else self._read(row[0], row[1])

    def count(self, outcomes: Iterable[str] | None = None, *, runnable: bool = False) -> int:
        """Keys with an outcome (of those named); `runnable`: not manifest items rejected
        before they had a key (`invalid@…`, worker/job/input.py)."""
        sql, args = "SELECT count(*) FROM outcome WHERE 1", []
        if outcomes is not None:
            names = list(outcomes)
            sql += f" AND outcome IN ({','.join('?' * len(names))})"
            args += names
        if runnable:
            sql += " AND key NOT LIKE 'invalid@%'"
        return int(self._one(sql, *args)[0])

    def counts(self) -> Counter[str]:
        """Enrollments by outcome, every outcome present (0 when none)."""
        counts: Counter[str] = Counter({o.value: 0 for o in Outcome})
        with self._lock:
            for outcome, n in self._db.execute("SELECT outcome, count(*) FROM outcome GROUP BY 1"):
                counts[outcome] += n
        return counts

    def outcomes(self) -> Iterator[EnrollmentOutcome]:
        """Every key's first outcome record, in journal order, a page of offsets at a time."""
        after, n = -1, self._page
        while True:
            with self._lock:
                page = self._db.execute(
                    "SELECT at, size FROM outcome WHERE at > ? ORDER BY at LIMIT ?", (after, n)
                ).fetchall()
            for at, size in page:
                yield self._read(at, size)
            if len(page) < n:
                return
            after = page[-1][0]

    def get(self, derivation: str) -> tuple[str, int] | None:
        """The (sha256, size) a derivation was journaled with (`AudioDerived`), if any."""
        row = self._one("SELECT sha256, size FROM derived WHERE derivation = ?", derivation)
        return None if row is None else (str(row[0]), int(row[1]))

    def _read(self, at: int, size: int) -> EnrollmentOutcome:
        with self._lock:
            if self._reader is None:
                self._reader = self.journal.open("rb")
            line = os.pread(self._reader.fileno(), size, at)
        record = parse_record(line, self.journal, 0)
        if not isinstance(record, EnrollmentOutcome):
            raise JournalCorrupt(f"{self.journal}: the index points at a {record.kind} record")
        return record


class _Batch:
    """Index rows of some journal lines, and the offset just past the last one."""

    def __init__(self) -> None:
        self.outcomes: list[tuple[str, int, int, str]] = []
        self.computed: list[tuple[str, str]] = []
        self.derived: list[tuple[str, str, int]] = []
        self.lines = 0
        self.end: int | None = None

    def add(self, offset: int, line: bytes, journal: Path, number: int) -> None:
        self.lines += 1
        self.end = offset + len(line)
        try:
            doc = json.loads(line)
            kind = doc.get("kind")
            if kind == "outcome":
                self.outcomes.append((doc["key"], offset, len(line), doc["outcome"]))
            elif kind == "computed":
                self.computed.append((doc["key"], doc["key"].split("/", 1)[0]))
            elif kind == "audio_derived":
                self.derived.append((doc["derivation"], doc["sha256"], int(doc["size"])))
        except (ValueError, KeyError, TypeError, AttributeError):
            parse_record(line, journal, number)  # raises JournalCorrupt with the reason
            raise JournalCorrupt(f"{journal} line {number}: not a journal record") from None
