"""Usage records: the caller's own and an org's, paged, rendered."""

from __future__ import annotations

from typing import Any

from emulator.pagination import PageRequest, PageResult
from emulator.records import (
    ApiError,
    Record,
    User,
)
from emulator.rules import (
    format_time,
)
from emulator.state.world import World, paginate_or_400


class Records(World):
    """The records operations of `State`."""

    # --- usage records -----------------------------------------------------------------------

    def _list_records(self, owner: str, req: PageRequest) -> PageResult[Record]:
        self.settle()
        return paginate_or_400(
            (r for r in self.records if r.owner["handle"] == owner),
            req,
            sort_value=lambda it, key: it.computed_at,
            texts=lambda it: (it.handle,),
            date=lambda it: it.computed_at,
        )

    def org_records(self, user: User, org: str, req: PageRequest) -> PageResult[Record]:
        if org not in user.orgs:
            raise ApiError(403, f"access denied: you are not a member of organization {org}")
        return self._list_records(org, req)

    def user_records(self, user: User, req: PageRequest) -> PageResult[Record]:
        return self._list_records(user.handle, req)

    @staticmethod
    def record_wire(record: Record) -> dict[str, Any]:
        return {
            "id": record.id,
            "handle": record.handle,
            "actor": record.actor,
            "model": record.model,
            "voiceprint": record.voiceprint,
            "space": record.space,
            "owner": record.owner,
            "computedAt": format_time(record.computed_at),
        }
