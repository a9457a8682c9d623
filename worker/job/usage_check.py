"""The usage check: one usage record per voiceprint the job computed, read while it computes.

Owns: which voiceprints a job computed (the driver journals `Computed` once a compute of ours
took effect, whatever the enrollment's outcome afterwards) and the comparison with the usage
records the API lists for their owners: none missing, none charged twice. A computed voiceprint
is a credit spent: `UsageCheck.expected` is the job's `credits_spent`.

Why while it computes: read after the last compute, a 3 000-enrollment job's 60 pages took
0.7 s of a 52 s run in which nothing else was sent. `UsageFollower` reads each page of an
owner's list once it is surely full (the job's own journaled computes fill it and one more
page), so only the last pages are left for the end; the requests are the same, 1 per 50
computes. The lists are sorted by `computedAt`, so new records land at the end and pages
already read do not move. If one did move (a record listed late, before records already
read), the distinct records seen no longer add up to the list's `Item-Total`, and that
owner's list is read again from page 1.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import anyio
import anyio.to_thread
import structlog

from worker.api import errors
from worker.api.client import ApiClient
from worker.api.schemas import Page, UsageRecord
from worker.enrollment.waiting import ApiAskedToWait
from worker.job.report import UsageCheck
from worker.journal.index import JournalIndex

log = structlog.get_logger(__name__)

USAGE_CLOCK_SKEW = timedelta(minutes=5)
PAGE_SIZE = 50
# Pages fetched at once at the end: what is left takes pages / 24 round trips.
USAGE_READ_AHEAD = 24
CHARGE_BATCH = 1_000  # usage records put into the index at once
LISTED = 100  # missing / double-charged keys named in the report (all are counted)
FOLLOW_EVERY_S = 1.0  # how often the follower looks for full pages while the job runs
# A page is read while the job runs only once the job's own computes fill this many more:
# records of computes still being answered and journaled land there, not on the page.
SLACK_PAGES = 1
SORT = "computedAt"  # oldest first: records billed meanwhile land on later pages


def _record_key(owner: str, record: UsageRecord) -> str:
    """The enrollment key a usage record bills: owner/space/identity/voiceprint."""
    vp = record.voiceprint
    space = record.space.handle if record.space else ""
    identity = vp.identity.handle if vp.identity else ""
    return f"{owner}/{space}/{identity}/{vp.handle}"


def _record_id(key: str, record: UsageRecord) -> str:
    """What tells two records apart: their id (handle), else what they bill and when."""
    return record.id or record.handle or f"{key}@{record.computed_at}"


def listed_total(page: Page[UsageRecord]) -> int | None:
    """How many records the whole list holds, as the server tells with this page."""
    if page.item_total is not None:
        return page.item_total
    if page.page_total is not None and page.page_current == page.page_total and page.page_size:
        return (page.page_total - 1) * page.page_size + len(page.items)
    return None


class UsageFollower:
    """Reads each owner's usage pages while the job computes, a page once it is surely full."""

    def __init__(
        self,
        client: ApiClient,
        index: JournalIndex,
        started_at: datetime,
        *,
        every: float = FOLLOW_EVERY_S,
    ) -> None:
        self._client = client
        self._every = every  # how often it looks for full pages
        self._index = index
        self._after = started_at - USAGE_CLOCK_SKEW
        self.pages_read: dict[str, int] = {}  # owner → full pages read and kept, from page 1
        self._computed: Counter[str] = Counter()  # owner → this job's computes indexed so far
        self._stopped = False  # gave up: what is left is read after the last compute
        self._finished = anyio.Event()

    def finish(self) -> None:
        """The enrollments are over: `follow` returns once a page being read is in.

        Not a cancellation: a page cut off in flight has been asked of the server already and
        would be asked again at the end, one request more than 1 per 50 computes.
        """
        self._finished.set()

    async def follow(self) -> None:
        """Read full pages every `every` seconds (`FOLLOW_EVERY_S`) until `finish()`."""
        await anyio.to_thread.run_sync(self._index.forget_usage)  # an earlier run's pages
        self._computed.update(await anyio.to_thread.run_sync(self._index.computed_per_owner))
        while not self._stopped:
            with anyio.move_on_after(self._every):
                await self._finished.wait()
            if self._finished.is_set():
                return
            try:
                await self._read_full_pages()
            except errors.ApiError as exc:
                # Nothing lost: the check after the last compute reads what is left.
                log.info("usage_follow_stopped", reason=str(exc))
                self._stopped = True

    async def _read_full_pages(self) -> None:
        # What the journal gained since the last look: no count over every compute each second.
        self._computed += await anyio.to_thread.run_sync(lambda: self._index.catch_up(live=True))
        for owner, ours in sorted(self._computed.items()):
            done = self.pages_read.get(owner, 0)
            while (
                not self._stopped
                and not self._finished.is_set()
                and ours >= (done + 1 + SLACK_PAGES) * PAGE_SIZE
            ):
                page = await self._client.usage_records_page(
                    owner, done + 1, after=self._after, sort=SORT, page_size=PAGE_SIZE
                )
                if len(page.items) < PAGE_SIZE or listed_total(page) is None:
                    # Not full after all, or a server that tells no totals (then nothing
                    # could show a shifted page): the rest is read after the last compute.
                    self._stopped = True
                    break
                seen = [_seen(owner, record) for record in page.items]
                await anyio.to_thread.run_sync(self._index.saw_usage, owner, seen)
                done += 1
                self.pages_read[owner] = done


def _seen(owner: str, record: UsageRecord) -> tuple[str, str]:
    """(record id, enrollment key): how the index keeps a record seen."""
    key = _record_key(owner, record)
    return _record_id(key, record), key


async def check_usage(
    client: ApiClient,
    index: JournalIndex,
    started_at: datetime,
    follower: UsageFollower | None = None,
) -> UsageCheck:
    """One usage record per voiceprint this job computed, whatever its outcome afterwards:
    none missing, none charged twice.

    The computed keys and the records seen live in the journal's index (`Computed` records,
    put there by `index.catch_up()` first), not in a dict: a million-enrollment job checks its
    usage in the same memory as a ten-enrollment one. Pages `follower` read while the job ran
    are not read again, unless the list has shifted since.
    """
    await anyio.to_thread.run_sync(index.catch_up)
    expected = await anyio.to_thread.run_sync(index.computed_count)
    read_before = follower.pages_read if follower is not None else {}
    try:
        for owner in await anyio.to_thread.run_sync(index.computed_owners):
            first = read_before.get(owner, 0) + 1
            if first == 1:
                await anyio.to_thread.run_sync(index.forget_usage, owner)
            if first == 1 or not await _went_on(client, index, owner, started_at, first):
                await _read_list(client, index, owner, started_at, 1)
    except errors.ApiPaused as exc:  # run --once: the job checkpoints, the check runs later
        raise ApiAskedToWait(str(exc)) from None
    except errors.ApiError as exc:
        found = await anyio.to_thread.run_sync(index.usage_found)
        return UsageCheck(expected=expected, found=found, error=str(exc))
    found = await anyio.to_thread.run_sync(index.usage_found)
    missing, missing_keys = await anyio.to_thread.run_sync(
        lambda: index.charged(times="= 0", limit=LISTED)
    )
    double, double_keys = await anyio.to_thread.run_sync(
        lambda: index.charged(times="> 1", limit=LISTED)
    )
    return UsageCheck(
        expected=expected,
        found=found,
        missing=missing_keys,
        double_charged=double_keys,
        missing_count=missing,
        double_charged_count=double,
    )


async def _went_on(
    client: ApiClient, index: JournalIndex, owner: str, started_at: datetime, first: int
) -> bool:
    """Read `owner`'s list on from page `first`; False (its records forgotten, to be read
    again from page 1) when the pages read earlier no longer add up to the list."""
    try:
        total = await _read_list(client, index, owner, started_at, first)
    except errors.ApiError as exc:  # e.g. 400: page `first` is past the end now
        total, reason = None, str(exc)
    else:
        reason = "the records seen do not add up to the list's total"
    listed = await anyio.to_thread.run_sync(index.usage_listed, owner)
    if total is not None and total == listed:
        return True
    log.warning("usage_list_read_again", owner=owner, reason=reason, listed=total, seen=listed)
    await anyio.to_thread.run_sync(index.forget_usage, owner)
    return False


async def _read_list(
    client: ApiClient, index: JournalIndex, owner: str, started_at: datetime, first: int
) -> int | None:
    """Put `owner`'s usage records from page `first` on into the index; the list's total."""
    total: int | None = None

    def told(page: Page[UsageRecord]) -> None:
        nonlocal total
        total = listed_total(page)

    seen: list[tuple[str, str]] = []
    async for record in client.list_usage_records(
        owner,
        after=started_at - USAGE_CLOCK_SKEW,
        sort=SORT,
        page_size=PAGE_SIZE,
        read_ahead=USAGE_READ_AHEAD,
        first_page=first,
        on_page=told,
    ):
        seen.append(_seen(owner, record))
        if len(seen) >= CHARGE_BATCH:
            await anyio.to_thread.run_sync(index.saw_usage, owner, seen)
            seen = []
    await anyio.to_thread.run_sync(index.saw_usage, owner, seen)
    return total
