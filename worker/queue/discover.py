"""Discovery: which inbox/ files are ready to claim, found by scans that file events prompt.

Owns: listing inbox/, the name and stability rules' I/O side (the rules themselves are pure, in
`worker.queue.rules`) and the one log line per skipped file. It moves no manifest (claim.py
does); a file that is not one, once it rests, goes to `refuse.py`, which moves it to failed/.

A full scan at start, then file events (watchfiles) as hints that trigger scans, a full rescan
every `rescan_interval` whatever the events said, and a polling mode (NFS, bind mounts) that
only scans. A scan cannot tell a complete file from one a producer is still writing in place,
so a file is taken only once stable and `min_age` old (`StabilityTracker`). File events can
tell: a batch that renamed in-progress names (dot-names, `*.tmp`, `*.part`) to as many
manifests or more shows those manifests complete (`arrived_by_rename`), and the scan the batch
triggers takes them at once instead of `min_age` later. Polling never sees a rename, so it
keeps the stability rule for every file; so does a rename from outside inbox/ (no in-progress
name is deleted there).
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import structlog

from worker.queue.paths import QueuePaths
from worker.queue.refuse import refuse_inbox_file
from worker.queue.rules import (
    EntryChange,
    FileStat,
    NameKind,
    StabilityTracker,
    arrived_by_rename,
    classify_name,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Candidate:
    """A file in inbox/ that is ready to claim: it passed the name and stability rules."""

    path: Path
    size: int
    mtime: float

    @property
    def name(self) -> str:
        return self.path.name


class InboxNotes:
    """One log line per inbox file and reason: a bad file is said once, not at every scan."""

    def __init__(self) -> None:
        self._noted: dict[str, str] = {}  # inbox name -> reason already logged

    def note(self, name: str, reason: str, level: str = "warning") -> None:
        if self._noted.get(name) == reason:
            return
        self._noted[name] = reason
        getattr(log, level)("queue_file_skipped", file=name or None, reason=reason)

    def keep_only(self, present: set[str]) -> None:
        """Forget the files gone from inbox/: a later file of the same name gets its own line."""
        for name in list(self._noted):
            if name and name not in present:
                del self._noted[name]


# Called after every scan with the manifest names it saw in inbox/ and the candidates it found
# ready (`JobQueue(on_scan=...)`), so a test acts after a given scan instead of a sleep.
ScanHook = Callable[[frozenset[str], list[Candidate]], None]


class Discovery:
    """Scans and the discovery loop over `paths.inbox`.

    `tracker` (the stability rule's memory) and `notes` are shared with the claims, which
    forget a claimed name and note a file that cannot be claimed.
    """

    def __init__(
        self,
        paths: QueuePaths,
        *,
        polling: bool,
        poll_interval: float,
        rescan_interval: float,
        clock: Callable[[], float],
        tracker: StabilityTracker,
        notes: InboxNotes,
        on_scan: ScanHook | None = None,
    ) -> None:
        self.paths = paths
        self.polling = polling
        self.poll_interval = poll_interval
        self.rescan_interval = rescan_interval
        self._clock = clock
        self._tracker = tracker
        self._notes = notes
        self._on_scan = on_scan

    def scan(self) -> list[Candidate]:
        """One scan of inbox/: the files ready to claim now. Never raises for a bad file."""
        inbox = self.paths.inbox
        stats: dict[str, FileStat] = {}
        present: set[str] = set()
        others: set[str] = set()
        try:
            entries = list(os.scandir(inbox))
        except OSError as exc:
            self._notes.note("", f"inbox cannot be listed: {exc.strerror}", level="error")
            return []
        for entry in entries:
            name = entry.name
            kind = classify_name(name)
            if kind is NameKind.IN_PROGRESS:
                continue
            present.add(name)
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # claimed or removed since the listing
            except OSError as exc:
                self._notes.note(name, f"cannot be read: {exc.strerror}")
                continue
            if not stat.S_ISREG(st.st_mode):
                self._notes.note(name, "not a regular file (directory or symlink); ignored")
                continue
            if kind is NameKind.OTHER:
                others.add(name)  # refused once it rests like a manifest would (refuse.py)
            stats[name] = FileStat(st.st_size, st.st_mtime_ns / 1e9, st.st_ino)
        self._notes.keep_only(present)
        ready = self._tracker.observe(stats, self._clock())
        for name in (n for n in ready if n in others):
            if (why := refuse_inbox_file(self.paths, name)) is not None:
                self._notes.note(name, f"not a manifest, and not moved to failed/: {why}")
        found = [
            Candidate(inbox / n, stats[n].size, stats[n].mtime) for n in ready if n not in others
        ]
        if self._on_scan is not None:
            self._on_scan(frozenset(stats.keys() - others), found)
        return found

    def pending_wait(self) -> float | None:
        """Seconds until an inbox file seen but not yet ready may become ready; None if none.

        For a drain (`run --once`): keep scanning while this is not None, sleeping this long.
        0.0 means a file only needs its second look.
        """
        return self._tracker.next_wait(self._clock())

    def _vouch_renamed(self, batch: Iterable[tuple[EntryChange, str]]) -> None:
        """Let the next scan take at once the manifests one event batch shows renamed in."""
        vouched = arrived_by_rename(batch)
        if vouched:
            self._tracker.vouch(vouched)
            log.debug("queue_renamed_in", files=sorted(vouched))

    def _next_scan_wait(self, default: float) -> float:
        wait = self._tracker.next_wait(self._clock())
        if wait is None:
            return default
        return min(default, max(wait, 0.05))

    async def discover(self, stop_event: anyio.Event) -> AsyncIterator[Candidate]:
        """Yield inbox files ready to claim until `stop_event` is set.

        A full scan at start; then file events (watchfiles) trigger scans, but only as hints:
        every `rescan_interval` a full scan runs anyway, and pending files are rescanned when
        they may have become stable. Each event batch also goes through `arrived_by_rename`
        before the scan it triggers, so a manifest dropped the Maildir way is taken by that scan
        without waiting `min_age`. With `queue_polling` (NFS, bind mounts, where events are
        unreliable) it scans every `poll_interval` instead, and every file waits for the
        stability rule (a scan cannot see a rename). A file still in inbox at the next scan (not
        claimed, e.g. the engine was full) is yielded again.
        """
        events_failed: list[Exception] = []
        if not self.polling:
            watching = self._discover_watching(stop_event, events_failed)
            async with contextlib.aclosing(watching):  # closes the watcher when we are closed
                async for candidate in watching:
                    yield candidate
            if not events_failed:
                return
        async for candidate in self._discover_polling(stop_event):
            yield candidate

    async def _discover_watching(
        self, stop_event: anyio.Event, failed: list[Exception]
    ) -> AsyncIterator[Candidate]:
        """The event-driven discovery; appends to `failed` when events stop working."""
        # imported here: polling-only deployments never need it
        from watchfiles import Change

        kinds = {
            Change.added: EntryChange.ADDED,
            Change.modified: EntryChange.MODIFIED,
            Change.deleted: EntryChange.DELETED,
        }
        tick = min(0.5, self.rescan_interval)
        watcher = self._watcher(stop_event, tick)
        try:
            next_rescan = time.monotonic() + self.rescan_interval
            scan_due = True  # the full scan at start
            # The watch only begins with the first `__anext__`: a file dropped between the
            # first scan and then raises no event, so the first answer triggers another scan.
            watching = False
            while not stop_event.is_set():
                if scan_due:
                    scans = self._scan_until_settled(stop_event, tick)
                    async with contextlib.aclosing(scans):
                        async for candidate in scans:
                            yield candidate
                    if stop_event.is_set():
                        return
                    wait = self._tracker.next_wait(self._clock())
                    next_check = time.monotonic() + (wait if wait is not None else math.inf)
                try:
                    changes = await watcher.__anext__()
                except StopAsyncIteration:
                    return
                except (OSError, RuntimeError) as exc:
                    log.warning("queue_events_unavailable", error=str(exc), fallback="polling")
                    failed.append(exc)
                    return
                if changes:  # before the scan they trigger: a vouch holds for that scan only
                    self._vouch_renamed((kinds[kind], os.path.basename(p)) for kind, p in changes)
                now = time.monotonic()
                scan_due = bool(changes) or now >= next_rescan or now >= next_check or not watching
                watching = True
                if now >= next_rescan:
                    next_rescan = now + self.rescan_interval
        finally:
            with contextlib.suppress(Exception):
                await watcher.aclose()

    def _watcher(self, stop_event: anyio.Event, tick: float) -> Any:
        """watchfiles on inbox/ alone, answering at least every `tick` (empty when idle)."""
        from watchfiles import awatch

        return awatch(
            self.paths.inbox,
            watch_filter=None,
            debounce=100,
            step=20,
            stop_event=stop_event,
            rust_timeout=max(1, int(tick * 1000)),
            yield_on_timeout=True,
            recursive=False,
            ignore_permission_denied=True,
        )

    async def _scan_until_settled(
        self, stop_event: anyio.Event, tick: float
    ) -> AsyncIterator[Candidate]:
        """Scan; while a pending file may become ready sooner than the watcher's next tick (a
        renamed file just needs its second look), scan again."""
        while True:
            for candidate in await anyio.to_thread.run_sync(self.scan):
                if stop_event.is_set():
                    return
                yield candidate
            wait = self._tracker.next_wait(self._clock())
            if wait is None or wait >= tick or stop_event.is_set():
                return
            with anyio.move_on_after(max(wait, 0.05)):
                await stop_event.wait()

    async def _discover_polling(self, stop_event: anyio.Event) -> AsyncIterator[Candidate]:
        while not stop_event.is_set():
            for candidate in await anyio.to_thread.run_sync(self.scan):
                if stop_event.is_set():
                    return
                yield candidate
            with anyio.move_on_after(self._next_scan_wait(self.poll_interval)):
                await stop_event.wait()
