"""List pagination as the contract defines it (§1): page, page-size, sort, search, after/before.

Owns: parsing and validating the query (out-of-range → `PaginationError`, answered 400), and
cutting one page out of a list with the numbers for the `Page-*` / `Item-Total` headers. Pure.

Decisions [ours]: `sort` is a field name, `-field` for descending, default `createdAt`
ascending (the list's date field where it has no `createdAt`); ties keep creation order.
`search` is a case-insensitive substring of handle or alias. `page` beyond the last page is
out of range (400), except page 1 of an empty list, which answers `[]` with `Page-Total: 0`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from emulator.rules import parse_time

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 50
KNOWN_PARAMS = frozenset({"page", "page-size", "sort", "search", "after", "before"})


class PaginationError(ValueError):
    """A query the list cannot answer; the message is shown to the caller."""


@dataclass(frozen=True)
class PageRequest:
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    sort: str = "createdAt"
    descending: bool = False
    search: str | None = None
    after: datetime | None = None
    before: datetime | None = None


def _int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise PaginationError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise PaginationError(f"{name} must be between {low} and {high}, got {value}")
    return value


def parse_page_request(
    query: Mapping[str, str],
    sorts: Sequence[str],
    *,
    searchable: bool = True,
) -> PageRequest:
    """Validate a list query. `sorts[0]` is the default sort field. Raises PaginationError."""
    page = _int_param(query, "page", 1, 1, 1_000_000)
    size = _int_param(query, "page-size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    sort_raw = query.get("sort") or sorts[0]
    descending = sort_raw.startswith("-")
    sort = sort_raw.removeprefix("-").removeprefix("+")
    if sort not in sorts:
        raise PaginationError(f"sort must be one of {', '.join(sorts)} (prefix - to reverse)")
    search = query.get("search")
    if search is not None and not searchable:
        raise PaginationError("this list does not support search")
    bounds: dict[str, datetime | None] = {}
    for name in ("after", "before"):
        raw = query.get(name)
        if raw is None:
            bounds[name] = None
            continue
        try:
            bounds[name] = parse_time(raw)
        except ValueError:
            raise PaginationError(f"{name} must be an ISO-8601 date-time, got {raw!r}") from None
    return PageRequest(page, size, sort, descending, search or None, **bounds)


@dataclass(frozen=True)
class PageResult(Generic[T]):
    items: list[T]
    page: int
    page_size: int
    page_total: int
    item_total: int

    def headers(self) -> dict[str, str]:
        return {
            "Page-Total": str(self.page_total),
            "Page-Size": str(self.page_size),
            "Page-Current": str(self.page),
            "Item-Total": str(self.item_total),
        }


def paginate(
    items: Iterable[T],
    request: PageRequest,
    *,
    sort_value: Callable[[T, str], Any],
    texts: Callable[[T], Iterable[str | None]],
    date: Callable[[T], datetime | None],
) -> PageResult[T]:
    """Filter, sort and cut one page. `items` must come in creation order (the tie-breaker)."""
    selected = list(items)
    if request.search:
        needle = request.search.casefold()
        selected = [it for it in selected if any(t and needle in t.casefold() for t in texts(it))]
    if request.after is not None or request.before is not None:

        def in_range(it: T) -> bool:
            moment = date(it)
            if moment is None:
                return False
            if request.after is not None and moment < request.after:
                return False
            return request.before is None or moment <= request.before

        selected = [it for it in selected if in_range(it)]

    def key(it: T) -> tuple[bool, Any]:
        value = sort_value(it, request.sort)
        return (value is None, value)  # missing values (e.g. not computed yet) sort last

    selected.sort(key=key, reverse=request.descending)
    total = len(selected)
    page_total = math.ceil(total / request.page_size)
    if request.page > max(page_total, 1):
        raise PaginationError(f"page {request.page} is beyond the last page ({page_total})")
    start = (request.page - 1) * request.page_size
    return PageResult(
        items=selected[start : start + request.page_size],
        page=request.page,
        page_size=request.page_size,
        page_total=page_total,
        item_total=total,
    )
