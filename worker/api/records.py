"""What is billed (api-contract.md §3, Usage records): the usage records of an owner, and its
credits (ours: the emulator serves them, the vendor documents no credits read).

Owns: their routes. Sending, retrying and parsing are the loop's (loop.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime

from worker.api.checks import check_about
from worker.api.loop import RequestLoop
from worker.api.schemas import Credits, Page, UsageRecord


class RecordsApi:
    """The usage-record and credit methods, sent through the loop; `ApiClient` exposes them."""

    def __init__(self, loop: RequestLoop) -> None:
        self._loop = loop

    async def get_credits(self, owner: str) -> Credits:
        """`GET /owners/{owner}/credits` (ours; the emulator serves it, the vendor documents
        no credits read, so a real service may answer 404). SAFE."""
        route = "/owners/{owner}/credits"
        credits = await self._loop.get(route, Credits, owner=owner)
        check_about({"owner": owner}, {"owner": credits.owner}, method="GET", route=route)
        return credits

    async def list_usage_records(
        self,
        owner: str,
        *,
        after: datetime | None = None,
        before: datetime | None = None,
        sort: str | None = None,
        page_size: int = 50,
        read_ahead: int = 1,
        first_page: int = 1,
        on_page: Callable[[Page[UsageRecord]], None] | None = None,
    ) -> AsyncIterator[UsageRecord]:
        """Voiceprint usage records of an owner: the caller's own (`/user/records/…`) when
        `owner` is the caller's handle, else the org's (`/orgs/{org}/records/…`).

        `read_ahead` > 1 wants `sort="computedAt"` (see `paginate`)."""
        route, path = await self._usage_route(owner)
        async for record in self._loop.paginate(
            route,
            UsageRecord,
            path,
            after=after,
            before=before,
            sort=sort,
            page_size=page_size,
            read_ahead=read_ahead,
            first_page=first_page,
            on_page=on_page,
        ):
            check_record(owner, record, route)
            yield record

    async def usage_records_page(
        self, owner: str, page: int, *, after: datetime | None, sort: str, page_size: int = 50
    ) -> Page[UsageRecord]:
        """One page of an owner's usage records (see `list_usage_records`). SAFE."""
        route, path = await self._usage_route(owner)
        params = {"page": page, "page-size": page_size, "sort": sort, "after": after}
        got = await self._loop.get_page(route, UsageRecord, path, params)
        for record in got.items:
            check_record(owner, record, route)
        return got

    async def _usage_route(self, owner: str) -> tuple[str, dict[str, str]]:
        me = await self._loop.user()
        if owner == me.handle:
            return "/user/records/voiceprint", {}
        return "/orgs/{org}/records/voiceprint", {"org": owner}


def check_record(owner: str, record: UsageRecord, route: str) -> None:
    """A usage record in an owner's list must bill that owner (a cached list of another
    owner's would count computes that are not ours): checked where the record names it."""
    named = [record.owner, record.space.owner if record.space is not None else None]
    for who in named:
        got = {"owner": who.handle if who is not None else None}
        check_about({"owner": owner}, got, method="GET", route=route)
