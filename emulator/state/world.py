"""The emulated service's world: who exists, who may act, time, and the snapshot.

Owns: users, orgs, sessions (sign-in, 401), spaces and access (403 before 404), handles and
ids, applying delayed processing when the world is read (`settle`), the model table, and the
JSON snapshot for persistence. Each resource's rules are in the module of its own beside
this one (identities, audios, voiceprints, records, credits); `State` in `__init__` is them
all. Synchronous and free of I/O.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import uuid
from collections.abc import Callable, Container, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from emulator.config import WorldConfig
from emulator.pagination import PageRequest, PageResult, PaginationError, paginate
from emulator.processing import Kind, Processing
from emulator.records import (
    SNAPSHOT_ADAPTER,
    SNAPSHOT_VERSION,
    ApiError,
    Audio,
    Org,
    Record,
    Session,
    Snapshot,
    Space,
    User,
    Voiceprint,
    bad_request,
    not_found,
)
from emulator.rules import (
    MODELS,
    Model,
    format_time,
)


def paginate_or_400(items: Any, req: PageRequest, **how: Any) -> PageResult[Any]:
    try:
        return paginate(items, req, **how)
    except PaginationError as exc:
        raise bad_request(str(exc)) from None


def vp_key(identity: str, handle: str) -> str:
    return f"{identity}/{handle}"


class World:
    """The world every resource lives in; `State` adds the resources' operations.

    `clock` gives the current UTC time (injected so tests can move time); `credits` is the
    balance every owner starts with (None = unlimited), overridden per owner by the world config.
    `file_delay_ms` / `compute_delay_ms` turn on asynchronous processing (see `processing.py`).
    """

    def __init__(
        self,
        world: WorldConfig,
        *,
        credits: int | None = None,
        token_ttl: float = 3600.0,
        seed: int | None = None,
        clock: Callable[[], datetime] | None = None,
        file_delay_ms: float = 0.0,
        compute_delay_ms: float = 0.0,
    ) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.processing = Processing(file_delay_ms, compute_delay_ms)
        self.token_ttl = token_ttl
        self.default_credits = credits
        self.credit_overrides = dict(world.credits)
        self._seed = seed
        self._rng = random.Random(seed)
        now = self.clock()
        self.users = {
            u.handle: User(u.handle, u.alias, u.password, list(u.api_keys), list(u.orgs))
            for u in world.users
        }
        self.orgs = {o.handle: Org(o.handle, o.alias) for o in world.orgs}
        self.sessions: dict[str, Session] = {}
        self.spaces = {
            f"{s.owner}/{s.handle}": Space(self._id(), s.owner, s.handle, s.alias, now)
            for s in world.spaces
        }
        self.records: list[Record] = []
        self._record_handles: set[str] = set()  # the records' handles (`record_handle`)
        self.credits_used: dict[str, int] = {}
        self._keys = {key: u.handle for u in self.users.values() for key in u.api_keys}

    if TYPE_CHECKING:  # provided by voiceprints.Voiceprints

        def _finish_compute(
            self, sp: Space, vp: Voiceprint, actor: dict[str, Any], at: datetime
        ) -> None: ...

    # --- helpers ---------------------------------------------------------------------------

    def _id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def record_handle(self) -> str:
        """A handle no usage record has, found in a set kept beside `records` (rebuilt when
        the list was replaced, e.g. by a snapshot): scanning every record per compute made a
        200 000-enrollment run quadratic."""
        if len(self._record_handles) != len(self.records):
            self._record_handles = {r.handle for r in self.records}
        handle = self._new_handle(self._record_handles)
        self._record_handles.add(handle)
        return handle

    def _new_handle(self, taken: Container[str], prefix: str = "") -> str:
        while True:
            handle = prefix + f"{self._rng.getrandbits(48):012x}"
            if handle not in taken:
                return handle

    def owner_ref(self, handle: str) -> dict[str, Any]:
        if handle in self.orgs:
            return {"type": "org", "handle": handle, "alias": self.orgs[handle].alias}
        user = self.users.get(handle)
        return {"type": "user", "handle": handle, "alias": user.alias if user else None}

    # --- auth ------------------------------------------------------------------------------

    def authenticate(self, token: str | None) -> User:
        """The caller behind a Bearer token; 401 when missing, unknown or expired."""
        if not token:
            raise ApiError(401, "missing bearer token")
        handle = self._keys.get(token)
        if handle is None:
            session = self.sessions.get(token)
            if session is None:
                raise ApiError(401, "invalid token")
            if self.clock() >= session.expires_at:
                del self.sessions[token]
                raise ApiError(401, "token expired; sign in again")
            handle = session.user
        return self.users[handle]

    def sign_in(self, handle: str, password: str) -> dict[str, Any]:
        """`POST /auth/credentials`: a session token that expires after `token_ttl`."""
        user = self.users.get(handle)
        if (
            user is None
            or user.password is None
            or not secrets.compare_digest(user.password.encode(), password.encode())
        ):
            raise ApiError(401, "invalid handle or password")
        now = self.clock()
        self._drop_expired_sessions(now)
        session = Session(
            secrets.token_urlsafe(24), user.handle, now, now + timedelta(seconds=self.token_ttl)
        )
        self.sessions[session.token] = session
        return {
            "token": session.token,
            "issuedAt": format_time(session.issued_at),
            "expiresAt": format_time(session.expires_at),
        }

    def _drop_expired_sessions(self, now: datetime) -> None:
        for token in [t for t, s in self.sessions.items() if s.expires_at <= now]:
            del self.sessions[token]

    def user_wire(self, user: User) -> dict[str, Any]:
        return {"handle": user.handle, "alias": user.alias, "orgs": list(user.orgs)}

    # --- access ----------------------------------------------------------------------------

    def may_act_for(self, user: User, owner: str) -> bool:
        return owner == user.handle or owner in user.orgs

    def space(self, user: User, owner: str, space: str) -> Space:
        """The space, if the caller may work in it: 403 first (no existence leak), then 404."""
        if not self.may_act_for(user, owner):
            raise ApiError(
                403, f"access denied: {owner} is neither you nor one of your organizations"
            )
        found = self.spaces.get(f"{owner}/{space}")
        if found is None:
            raise not_found(f"space {owner}/{space} not found")
        self.settle()
        return found

    # --- asynchronous processing -----------------------------------------------------------

    def settle(self) -> None:
        """Apply every delayed file and compute whose time has come (before any read)."""
        if not len(self.processing):
            return
        for due in self.processing.due(self.clock()):
            sp = self.spaces.get(due.space)
            if sp is None:
                continue
            if due.kind is Kind.FILE:
                audio = sp.audios.get(due.key)
                if audio is not None and audio.ready_state is not None:
                    audio.state, audio.ready_state, audio.ready_at = audio.ready_state, None, None
            else:
                vp = sp.voiceprints.get(due.key)
                if vp is not None and vp.computing_until is not None:
                    self._finish_compute(sp, vp, vp.computing_actor or {}, vp.computing_until)

    def _pending(self) -> Iterator[tuple[datetime, Kind, str, str]]:
        """What a restored snapshot still has to settle."""
        for key, sp in self.spaces.items():
            for audio in sp.audios.values():
                if audio.ready_at is not None:
                    yield audio.ready_at, Kind.FILE, key, audio.handle
            for vp_key, vp in sp.voiceprints.items():
                if vp.computing_until is not None:
                    yield vp.computing_until, Kind.COMPUTE, key, vp_key

    # --- models ------------------------------------------------------------------------------

    @staticmethod
    def models() -> list[Model]:
        return list(MODELS.values())

    # --- counts for stats --------------------------------------------------------------------

    def iter_audios(self) -> Iterator[tuple[Space, Audio]]:
        self.settle()
        for sp in self.spaces.values():
            for audio in sp.audios.values():
                yield sp, audio

    # --- persistence -------------------------------------------------------------------------

    def snapshot_json(self) -> bytes:
        """The whole world as JSON bytes (taken on the event loop, so it is consistent)."""
        snap = Snapshot(
            SNAPSHOT_VERSION,
            self.users,
            self.orgs,
            self.sessions,
            self.spaces,
            self.records,
            self.credits_used,
        )
        return SNAPSHOT_ADAPTER.dump_json(snap)

    def restore_json(self, data: bytes) -> None:
        """Replace the world with a snapshot. Users, orgs and spaces of the current config that
        the snapshot lacks are kept, so a config that grows still applies after a restart."""
        snap = SNAPSHOT_ADAPTER.validate_json(data)
        if snap.version != SNAPSHOT_VERSION:
            raise ValueError(f"state file version {snap.version} is not {SNAPSHOT_VERSION}")
        # Users and orgs come from configuration, never from the API: the config wins.
        self.users = {**snap.users, **self.users}
        self.orgs = {**snap.orgs, **self.orgs}
        self.spaces = {**self.spaces, **snap.spaces}
        self.sessions = snap.sessions
        self.records = snap.records
        self.credits_used = snap.credits_used
        self._keys = {key: u.handle for u in self.users.values() for key in u.api_keys}
        self.processing.rebuild(self._pending())
        # Handles and ids must not repeat what the snapshot holds, yet stay reproducible.
        self._rng = random.Random(f"{self._seed}:{hashlib.sha256(data).hexdigest()}")
