"""Paginated lists, read inside bounds the server cannot move (api-contract.md §5).

Owns: walking a list page after page (or in read-ahead windows) and the rule that stops it:
at the smaller of what `Page-Total` / `Item-Total` justify and an absolute cap
(`ENROLLER_MAX_LIST_PAGES`), and as soon as a page repeats one already read (a middlebox that
answers every page with the first, a `Page-Current` stuck at 1). A list that does not end is an
`InvalidResponse` saying so: "pagination did not end after N pages". Sending and parsing are
the loop's (loop.py); this module only decides which page is next and when to stop.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol, TypeVar

import anyio
from pydantic import BaseModel

from worker.api.errors import InvalidResponse
from worker.api.schemas import Page
from worker.api.transport import Query

M = TypeVar("M", bound=BaseModel)


class PageReader(Protocol):
    """What a walk needs of the request loop: one page of a list."""

    async def get_page(
        self, route: str, model: type[M], path: Mapping[str, str], params: Query
    ) -> Page[M]: ...


def justified_pages(page: Page[Any], cap: int) -> int:
    """How many pages the last page's headers justify, never more than `cap`.

    The smaller of `Page-Total` and `Item-Total` / page size where the server gives them;
    `cap` alone where it gives neither.
    """
    bounds = [cap]
    if page.page_total is not None and page.page_total >= 0:
        bounds.append(page.page_total)
    if page.item_total is not None and page.item_total >= 0 and page.page_size:
        bounds.append(max(1, math.ceil(page.item_total / page.page_size)))
    return min(bounds)


class Bounds:
    """The pages read so far of one list: it refuses a repeat and a list past its bound."""

    def __init__(self, route: str, cap: int) -> None:
        self.route = route
        self.cap = cap
        self.read = 0
        self._seen: dict[str, int] = {}

    def check(self, number: int, page: Page[Any]) -> None:
        """Count page `number`; raise when it repeats an earlier one or passes the cap."""
        self.read += 1
        if page.fingerprint is not None and page.items:
            earlier = self._seen.setdefault(page.fingerprint, number)
            if earlier != number:
                self.fail(f"page {number} repeats page {earlier}")
        if self.read > self.cap:
            self.fail(f"more than ENROLLER_MAX_LIST_PAGES ({self.cap})")

    def more_than_justified(self, page: Page[Any], number: int) -> None:
        """A non-last page at or past what the headers justify: the list does not end."""
        if number >= justified_pages(page, self.cap):
            self.fail(f"the headers justify {justified_pages(page, self.cap)}")

    def fail(self, why: str) -> None:
        raise InvalidResponse(
            f"pagination did not end after {self.read} pages ({why})",
            method="GET",
            route=self.route,
        )


async def walk(
    reader: PageReader,
    route: str,
    model: type[M],
    path: Mapping[str, str],
    *,
    max_pages: int,
    page_size: int = 50,
    sort: str | None = None,
    search: str | None = None,
    after: datetime | None = None,
    before: datetime | None = None,
    read_ahead: int = 1,
    first_page: int = 1,
    on_page: Callable[[Page[M]], None] | None = None,
) -> AsyncIterator[M]:
    """Every item of a list, page after page, each page number asked once and in order.

    A page is read whole before its items are yielded (stopping early holds no connection).
    Items created meanwhile may be missed or seen twice unless the list is sorted by a
    creation time. `read_ahead` > 1 fetches that many pages at once once page 1 has told the
    page total (only for lists where new items land at the end); `first_page` > 1 goes on
    from there; `on_page` is shown each page read. It stops as `Bounds` says.
    """
    params: dict[str, Any] = {
        "page-size": page_size,
        "sort": sort,
        "search": search,
        "after": after,
        "before": before,
    }
    bounds = Bounds(route, max_pages)
    page, last = first_page, None
    while last is None:
        result = await reader.get_page(route, model, path, {**params, "page": page})
        bounds.check(page, result)
        if on_page is not None:
            on_page(result)
        for item in result.items:
            yield item
        if result.is_last or not result.items:
            return
        bounds.more_than_justified(result, page)
        page += 1  # the page asked for, not the one the answer claims to be
        if read_ahead > 1 and result.page_total is not None:
            last = min(result.page_total, justified_pages(result, max_pages))
    while page <= last:
        numbers = range(page, min(page + read_ahead, last + 1))
        pages = await _read_window(reader, route, model, path, params, numbers)
        for number in numbers:
            bounds.check(number, pages[number])
            if on_page is not None:
                on_page(pages[number])
            for item in pages[number].items:
                yield item
        page = numbers[-1] + 1


async def _read_window(
    reader: PageReader,
    route: str,
    model: type[M],
    path: Mapping[str, str],
    params: Mapping[str, Any],
    numbers: range,
) -> dict[int, Page[M]]:
    """The pages `numbers` of a list, read at once (each still paced by the governor)."""
    pages: dict[int, Page[M]] = {}

    async def fetch(number: int) -> None:
        pages[number] = await reader.get_page(route, model, path, {**params, "page": number})

    async with anyio.create_task_group() as tg:
        for number in numbers:
            tg.start_soon(fetch, number)
    return pages
