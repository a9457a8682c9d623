"""What `enroller check` adds for a migration of every identity of a space: the count that
`enroller plan` cannot make offline, and what it costs.

Owns: one read (a one-item page of the space's identities, whose `Item-Total` is the count)
and the figures made from it. The identities on other models, or without the voiceprint, cost
fewer requests and no credit: these are upper bounds.
"""

from __future__ import annotations

import math

from worker.api import errors
from worker.api.client import ApiClient
from worker.api.schemas import Identity, Page
from worker.commands.plan_models import MigrateAll
from worker.enrollment.requests import SWAP_PROBE_REQUESTS


async def identities_page(client: ApiClient, owner: str, space: str) -> Page[Identity]:
    """A one-item page of the space's identities: whether the space can be read, and (its
    `Item-Total`) how many identities it holds. Raises what the API answered."""
    return await client.get_page(
        "/spaces/{owner}/{space}/identities",
        Identity,
        {"owner": owner, "space": space},
        {"page": 1, "page-size": 1},
    )


async def migration_count(
    client: ApiClient, migration: MigrateAll, rate_limit: float
) -> tuple[bool, str, int]:
    """(ok, message, credits at most) for `migration`; never raises for an API refusal."""
    owner, space = migration.space.split("/", 1)
    try:
        page = await identities_page(client, owner, space)
    except errors.ApiError as exc:
        return False, f"the identities cannot be counted: {exc}", 0
    if page.item_total is None:
        return True, "the API does not say how many identities there are (no Item-Total)", 0
    n = page.item_total
    pages = math.ceil(n / 50)  # the identities listed once, the usage records read once
    requests = n * migration.requests_per_identity + 2 * pages + SWAP_PROBE_REQUESTS
    return (
        True,
        f"{n} identities to move from {migration.from_model} to {migration.to_model}: at most "
        f"{requests} requests and {n} credits, {requests / rate_limit:.1f} s at "
        f"{rate_limit:g} requests/s",
        n,
    )
