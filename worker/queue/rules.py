"""Pure rules of the queue directory: which names count, when a file is ready, job ids, leases.

Owns: every decision of `worker.queue` that can be made without touching the filesystem or a
clock, so that it is unit-tested with plain values (fake stat results, a fake clock, event
batches as plain pairs). It never performs I/O, never reads the time itself (callers pass `now`
in) and never imports the file-watching library (callers map its event kinds to `EntryChange`).

When an inbox file is ready, two rules:

- Stability (`StabilityTracker`), for producers that write in place: the file must be seen
  unchanged across two scans and be at least `min_age` old. A scan cannot tell a file renamed in
  complete from one still being written, so every file waits for this unless vouched for.
- Completed rename (`arrived_by_rename`), from file events only: a batch of events that deleted
  in-progress names (the Maildir contract, design.md §3) and added as many candidates or fewer
  shows those candidates arriving complete by rename; the tracker takes them at its next scan
  without waiting `min_age`. An in-place write adds a name without deleting an in-progress one,
  so it never counts. When a batch cannot be read unambiguously, nothing is vouched for and the
  stability rule decides. Polling sees no events and always uses the stability rule.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath

from pydantic import BaseModel, ConfigDict

CANDIDATE_SUFFIXES = frozenset({".json", ".csv"})
# Names a dropper uses while it writes (Maildir contract, design.md §3).
IN_PROGRESS_SUFFIXES = (".tmp", ".part")
# `JobQueue.setup` proves renames work by creating `<prefix><random>.tmp` in inbox/ and renaming
# it out: its deletion is not a producer's completed rename (every worker does it at start).
SETUP_PROBE_PREFIX = ".probe-"
JOB_HASH_CHARS = 10
_MAX_STEM = 64
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class NameKind(enum.Enum):
    """What a name in inbox/ is, by name alone."""

    # A manifest to consider (still subject to the stability rule).
    CANDIDATE = "candidate"
    # Being written by a dropper (dot-name, *.tmp, *.part): skipped silently, it will be renamed.
    IN_PROGRESS = "in_progress"
    # Anything else (README.txt, a .zip): never taken; worth one log line so an operator who
    # dropped `batch.xlsx` learns why nothing happens.
    OTHER = "other"


def classify_name(name: str) -> NameKind:
    """Classify one inbox entry name by the dropper contract."""
    if name.startswith("."):
        return NameKind.IN_PROGRESS
    lower = name.lower()
    if lower.endswith(IN_PROGRESS_SUFFIXES):
        return NameKind.IN_PROGRESS
    if PurePath(lower).suffix in CANDIDATE_SUFFIXES and PurePath(lower).stem:
        return NameKind.CANDIDATE
    return NameKind.OTHER


def safe_stem(name: str) -> str:
    """The part of a job id that comes from the file name: safe as a file and directory name."""
    stem = _UNSAFE.sub("_", PurePath(name).stem).strip("._-")[:_MAX_STEM].rstrip("._-")
    return stem or "manifest"


def job_id_for(name: str, sha256_hex: str) -> str:
    """Job id = stem + short content hash: the same name with new content is a new job."""
    return f"{safe_stem(name)}-{sha256_hex[:JOB_HASH_CHARS].lower()}"


# --- stability of in-place written files -------------------------------------------------------


@dataclass(frozen=True)
class FileStat:
    """What one scan saw of a file: enough to tell whether someone is still writing it."""

    size: int
    mtime: float  # wall-clock seconds (st_mtime_ns / 1e9)
    ino: int = 0  # a file replaced under the same name is a different file


class StabilityTracker:
    """Decides which inbox files are ready: unchanged across two scans and at least `min_age` old.

    The age is the larger of "since its mtime" and "since first seen unchanged": a file that
    arrives by rename with an old mtime is ready at the second scan, and a file whose mtime is in
    the future (clock skew on a shared volume) still becomes ready once it has rested `min_age`
    under our own observation. Files that vanish are forgotten.

    A name vouched for (`vouch`, from `arrived_by_rename`) is ready at the next scan, at first
    look, without waiting `min_age`: it is complete by the dropper contract. That scan credits it
    with `min_age` of rest for the stat it saw, so it stays ready while unchanged (as any ready
    file does), but a later change (an in-place rewrite) starts over under the stability rule.
    The vouch itself is spent by that one scan, and `forget` drops it.
    """

    def __init__(self, min_age: float) -> None:
        self.min_age = min_age
        # name -> (stat as last seen, wall time since which it has been seen unchanged)
        self._seen: dict[str, tuple[FileStat, float]] = {}
        # names vouched for since the last scan; only that next scan honours them
        self._vouched: set[str] = set()

    def vouch(self, names: Iterable[str]) -> None:
        """Names known to have arrived complete (by rename): ready at the next `observe`."""
        self._vouched.update(names)

    def observe(self, stats: Mapping[str, FileStat], now: float) -> list[str]:
        """Record one scan; return the names ready to claim, sorted (oldest-name order)."""
        vouched, self._vouched = self._vouched, set()
        ready: list[str] = []
        seen: dict[str, tuple[FileStat, float]] = {}
        for name, stat in stats.items():
            previous = self._seen.get(name)
            if name in vouched:
                since = now - self.min_age  # as if it had rested min_age in this very state
                ready.append(name)
            elif previous is not None and previous[0] == stat:
                since = previous[1]
                if self._age(stat, since, now) >= self.min_age:
                    ready.append(name)
            else:
                since = now
            seen[name] = (stat, since)
        self._seen = seen
        return sorted(ready)

    def next_wait(self, now: float) -> float | None:
        """Seconds until another scan could make a pending file ready; None when none is pending.

        0.0 means "just needs another look": the file is old enough but seen only once, or a
        name was vouched for since the last scan.
        """
        if self._vouched:
            return 0.0
        waits = [
            max(0.0, self.min_age - self._age(stat, since, now))
            for stat, since in self._seen.values()
        ]
        return min(waits) if waits else None

    def forget(self, name: str) -> None:
        """Drop what is known about `name`, its vouch included (after it was claimed)."""
        self._seen.pop(name, None)
        self._vouched.discard(name)

    @staticmethod
    def _age(stat: FileStat, since: float, now: float) -> float:
        return max(now - stat.mtime, now - since)


# --- file events: which names arrived by a completed rename -----------------------------------


class EntryChange(enum.Enum):
    """What one file event said about an inbox entry (the watcher's kinds, mapped by the caller)."""

    ADDED = "added"  # created, or renamed to this name
    MODIFIED = "modified"  # written to (or its metadata changed)
    DELETED = "deleted"  # removed, or renamed away from this name


def is_setup_probe(name: str) -> bool:
    """Whether `name` is a queue-setup rename probe (`JobQueue.setup`), ours or another worker's."""
    return name.startswith(SETUP_PROBE_PREFIX) and name.endswith(".tmp")


def arrived_by_rename(batch: Iterable[tuple[EntryChange, str]]) -> frozenset[str]:
    """The candidate names one event batch shows arriving complete, by a rename in inbox/.

    A Maildir drop (`.x.tmp` or `x.json.part` renamed to `x.json`) shows in one batch as the
    in-progress name deleted and the candidate added; an in-place write shows only the candidate
    added (and modified). So the candidates added in a batch are vouched for when the batch also
    deleted at least as many in-progress names. More candidates added than in-progress names
    deleted is ambiguous (some were written in place, we cannot tell which): none is vouched for.

    A batch is a set without order, so a candidate that was also modified or deleted in it may
    have been written or replaced after arriving: it counts as added but is not vouched for.
    Setup probes are no evidence: workers create and rename them out of inbox/ as they start.
    """
    added: set[str] = set()
    doubtful: set[str] = set()
    renamed_away: set[str] = set()
    for change, name in batch:
        kind = classify_name(name)
        if kind is NameKind.CANDIDATE:
            (added if change is EntryChange.ADDED else doubtful).add(name)
        elif (
            kind is NameKind.IN_PROGRESS
            and change is EntryChange.DELETED
            and not is_setup_probe(name)
        ):
            renamed_away.add(name)
    if len(added) > len(renamed_away):
        return frozenset()
    return frozenset(added - doubtful)


# --- leases ------------------------------------------------------------------------------------


class Lease(BaseModel):
    """The content of a lease file: who holds a job and when they last said they still do.

    `heartbeat` is the holder's wall clock: workers sharing a queue over a volume must have
    roughly synchronised clocks (NTP); a skew approaching `lease_ttl` causes early takeovers.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    holder: str  # worker_id
    host: str
    pid: int
    token: str  # random per acquisition: tells two incarnations of one worker_id apart
    generation: int
    job: str  # job id, or the staging directory name while a claim is being settled
    acquired_at: datetime
    heartbeat: datetime
    released: bool = False  # given up on a clean shutdown: anyone may take it at once


def lease_age(lease: Lease, now: float) -> float:
    """Seconds since the holder last renewed the lease (negative under clock skew)."""
    return now - lease.heartbeat.timestamp()


def lease_is_stale(lease: Lease, now: float, ttl: float) -> bool:
    """A lease is stale when released, or not renewed within `ttl` seconds.

    Exact only when `now` comes from the clock that wrote the heartbeat (the same host); for a
    lease of another host, `LeaseWatch` judges instead.
    """
    return lease.released or lease_age(lease, now) > ttl


class LeaseWatch:
    """How long this worker has seen each lease unchanged, by its own monotonic clock. Pure.

    Another host's heartbeat time is written by that host's clock: ten minutes of skew would
    make a live lease look dead (a stolen job) or a dead one look alive (a job kept forever).
    What this worker can trust is its own observation: a lease whose content (generation,
    token, heartbeat) has not changed for `ttl` seconds of its own clock is not being renewed.
    """

    def __init__(self) -> None:
        self._seen: dict[str, tuple[object, float]] = {}

    def unchanged_for(self, key: str, content: object, now: float) -> float:
        """Seconds `key` has shown `content`; 0 when it is new or changed since the last look."""
        seen = self._seen.get(key)
        if seen is None or seen[0] != content:
            self._seen[key] = (content, now)
            return 0.0
        return now - seen[1]

    def forget(self, key: str) -> None:
        self._seen.pop(key, None)
