"""The identities of a space (api-contract.md §3, Identities): create, read, list.

Owns: their routes, bodies and retry class. Sending, retrying and parsing are the loop's
(loop.py); the caller's own account (`get_user`) is auth.py's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from worker.api.checks import check_about
from worker.api.loop import RequestLoop
from worker.api.schemas import Identity, IdentityCreate


class IdentitiesApi:
    """The identity methods, sent through the loop it is given; `ApiClient` exposes them."""

    def __init__(self, loop: RequestLoop) -> None:
        self._loop = loop

    async def create_identity(
        self, owner: str, space: str, handle: str, alias: str | None = None
    ) -> Identity:
        """Create an identity. SAFE: handle-keyed, a repeat answers `Conflict` (= exists)."""
        route = "/spaces/{owner}/{space}/identities"
        answer = await self._loop.call(
            "POST",
            route,
            path={"owner": owner, "space": space},
            json=IdentityCreate(handle=handle, alias=alias).to_wire(),
        )
        identity = self._loop.parse(answer, Identity, "POST", route)
        check_about({"handle": handle}, {"handle": identity.handle}, method="POST", route=route)
        return identity

    async def get_identity(self, owner: str, space: str, identity: str) -> Identity:
        """Read an identity (SAFE); `NotFound` if absent; another one's is `InvalidResponse`."""
        route = "/spaces/{owner}/{space}/identities/{identity}"
        got = await self._loop.get(route, Identity, owner=owner, space=space, identity=identity)
        check_about({"handle": identity}, {"handle": got.handle}, method="GET", route=route)
        return got

    def list_identities(
        self,
        owner: str,
        space: str,
        *,
        search: str | None = None,
        sort: str | None = None,
        page_size: int = 50,
    ) -> AsyncIterator[Identity]:
        """Every identity of a space, page after page (SAFE reads); sort `handle` or
        `createdAt` (the default), `search` a substring of handle or alias."""
        return self._loop.paginate(
            "/spaces/{owner}/{space}/identities",
            Identity,
            {"owner": owner, "space": space},
            search=search,
            sort=sort,
            page_size=page_size,
        )
