"""Identities of a space: create (handle rules, 409 on a taken handle), read, list, render."""

from __future__ import annotations

from typing import Any

from emulator.pagination import PageRequest, PageResult
from emulator.records import (
    Identity,
    Space,
    bad_request,
    conflict,
    not_found,
)
from emulator.rules import (
    alias_error,
    format_time,
    handle_error,
)
from emulator.state.world import World, paginate_or_400


class Identities(World):
    """The identities operations of `State`."""

    # --- identities --------------------------------------------------------------------------

    def create_identity(self, sp: Space, handle: Any, alias: Any) -> Identity:
        for problem in (handle_error(handle), alias_error(alias)):
            if problem:
                raise bad_request(problem)
        if handle in sp.identities:
            raise conflict(f"identity {handle} already exists in {sp.owner}/{sp.handle}")
        identity = Identity(self._id(), handle, alias, self.clock())
        sp.identities[handle] = identity
        return identity

    def identity(self, sp: Space, handle: str) -> Identity:
        found = sp.identities.get(handle)
        if found is None:
            raise not_found(f"identity {handle} not found in {sp.owner}/{sp.handle}")
        return found

    def identity_wire(self, ident: Identity) -> dict[str, Any]:
        return {
            "id": ident.id,
            "handle": ident.handle,
            "alias": ident.alias,
            "audios": ident.audios,
            "voiceprints": ident.voiceprints,
            "verifications": ident.verifications,
            "createdAt": format_time(ident.created_at),
        }

    def list_identities(self, sp: Space, req: PageRequest) -> PageResult[Identity]:
        fields = {"handle": "handle", "createdAt": "created_at"}
        return paginate_or_400(
            sp.identities.values(),
            req,
            sort_value=lambda it, key: getattr(it, fields[key]),
            texts=lambda it: (it.handle, it.alias),
            date=lambda it: it.created_at,
        )
