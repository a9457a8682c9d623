"""The emulated service's world and every rule that changes it.

Owns: users, orgs, sessions, spaces, identities, audios, voiceprints, usage records and
verifications; access control (403), existence (404), collisions (409), model requirements
(422), credits (429), voiceprint state transitions, wire rendering and the JSON snapshot used for
persistence. Synchronous and free of I/O: the aiohttp layer (`app.py`) calls one method per
request and never mutates anything itself, so every rule is testable without a socket.
Audio decoding happens before a method is called (see `audio.py`); the result is passed in.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter

from emulator.audio import Analysis
from emulator.config import WorldConfig
from emulator.pagination import PageRequest, PageResult, PaginationError, paginate
from emulator.rules import (
    MIN_AUDIOS_RANGE,
    MIN_TOTAL_VOICE_S,
    MODELS,
    Model,
    alias_error,
    format_duration,
    format_time,
    handle_error,
    requirement_failure,
)

SNAPSHOT_VERSION = 1

# --- errors ----------------------------------------------------------------------------------


class ApiError(Exception):
    """A rule refused the request; `status` and `message` become the HTTP answer."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def conflict(message: str) -> ApiError:
    return ApiError(409, message)


# --- the world's records -----------------------------------------------------------------------
# Plain dataclasses: pydantic's TypeAdapter turns the whole `Snapshot` into JSON and back.


@dataclass
class User:
    handle: str
    alias: str | None
    password: str | None
    api_keys: list[str]
    orgs: list[str]


@dataclass
class Org:
    handle: str
    alias: str | None


@dataclass
class Session:
    token: str
    user: str
    issued_at: datetime
    expires_at: datetime


@dataclass
class Identity:
    id: str
    handle: str
    alias: str | None
    created_at: datetime
    audios: int = 0  # audios linked to this identity
    voiceprints: int = 0
    verifications: int = 0


@dataclass
class Audio:
    id: str
    handle: str
    alias: str | None
    created_at: datetime
    state: str = "avaitingFile"  # the vendor's spelling [doc]
    identity: str | None = None
    duration: float | None = None
    voice_duration: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    format: str | None = None
    size: int | None = None
    uploaded_at: datetime | None = None
    voiceprints: int = 0
    verifications: int = 0


@dataclass
class Voiceprint:
    id: str
    handle: str
    alias: str | None
    identity: str
    model: str
    min_audios: int
    created_at: datetime
    audios: list[str] = field(default_factory=list)
    state: str = "notComputable"
    computed_at: datetime | None = None
    verifications: int = 0


@dataclass
class Verification:
    id: str
    handle: str
    alias: str | None
    state: str
    model: str
    audio: str
    identity: str
    voiceprint: str
    score: float | None
    created_at: datetime
    performed_at: datetime | None


@dataclass
class Space:
    id: str
    owner: str
    handle: str
    alias: str | None
    created_at: datetime
    identities: dict[str, Identity] = field(default_factory=dict)
    audios: dict[str, Audio] = field(default_factory=dict)
    voiceprints: dict[str, Voiceprint] = field(default_factory=dict)  # "identity/handle"
    verifications: dict[str, Verification] = field(default_factory=dict)


@dataclass
class Record:
    id: str
    handle: str
    actor: dict[str, Any]
    model: str
    voiceprint: dict[str, Any]
    space: dict[str, Any]
    owner: dict[str, Any]
    computed_at: datetime


@dataclass
class Snapshot:
    """Everything that survives a restart (audio bytes do not; their measurements do)."""

    version: int
    users: dict[str, User]
    orgs: dict[str, Org]
    sessions: dict[str, Session]
    spaces: dict[str, Space]  # "owner/handle"
    records: list[Record]
    credits_used: dict[str, int]


_SNAPSHOT = TypeAdapter(Snapshot)


def _paginate(items: Any, req: PageRequest, **how: Any) -> PageResult[Any]:
    try:
        return paginate(items, req, **how)
    except PaginationError as exc:
        raise bad_request(str(exc)) from None


def _vp_key(identity: str, handle: str) -> str:
    return f"{identity}/{handle}"


# --- the world ---------------------------------------------------------------------------------


class State:
    """The whole emulated service. One instance per emulator; methods are its operations.

    `clock` gives the current UTC time (injected so tests can move time); `credits` is the
    balance every owner starts with (None = unlimited), overridden per owner by the world config.
    """

    def __init__(
        self,
        world: WorldConfig,
        *,
        credits: int | None = None,
        token_ttl: float = 3600.0,
        seed: int | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
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
        self.credits_used: dict[str, int] = {}
        self._keys = {key: u.handle for u in self.users.values() for key in u.api_keys}

    # --- helpers ---------------------------------------------------------------------------

    def _id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _new_handle(self, taken: dict[str, Any] | set[str], prefix: str = "") -> str:
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
        return found

    # --- credits ---------------------------------------------------------------------------

    def credit_limit(self, owner: str) -> int | None:
        return self.credit_overrides.get(owner, self.default_credits)

    def credits_left(self, owner: str) -> int | None:
        limit = self.credit_limit(owner)
        return None if limit is None else max(0, limit - self.credits_used.get(owner, 0))

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
        return _paginate(
            sp.identities.values(),
            req,
            sort_value=lambda it, key: getattr(it, fields[key]),
            texts=lambda it: (it.handle, it.alias),
            date=lambda it: it.created_at,
        )

    # --- audios ----------------------------------------------------------------------------

    def check_new_audio(self, sp: Space, alias: Any, identity: Any) -> None:
        """Everything `create_audio` would refuse, checked before any upload is decoded."""
        problem = alias_error(alias)
        if problem:
            raise bad_request(problem)
        if identity is not None:
            if not isinstance(identity, str):
                raise bad_request("identity must be a handle")
            self.identity(sp, identity)

    def create_audio(
        self,
        sp: Space,
        alias: Any,
        identity: Any,
        analysis: Analysis | None = None,
        size: int | None = None,
    ) -> Audio:
        """A new audio; with `analysis` it already holds its file (the base64 form)."""
        self.check_new_audio(sp, alias, identity)
        audio = Audio(self._id(), self._new_handle(sp.audios), alias, self.clock())
        sp.audios[audio.handle] = audio
        if identity is not None:
            self._link(sp, audio, identity)
        if analysis is not None:
            self.attach_file(sp, audio.handle, analysis, size or 0)
        return audio

    def audio(self, sp: Space, handle: str) -> Audio:
        found = sp.audios.get(handle)
        if found is None:
            raise not_found(f"audio {handle} not found in {sp.owner}/{sp.handle}")
        return found

    def check_awaiting_file(self, sp: Space, handle: str) -> Audio:
        audio = self.audio(sp, handle)
        if audio.state != "avaitingFile":
            raise conflict(f"audio {handle} already has a file; an audio takes exactly one")
        return audio

    def attach_file(self, sp: Space, handle: str, analysis: Analysis, size: int) -> Audio:
        """Store a file's measurements; the second file for one audio is a 409."""
        audio = self.check_awaiting_file(sp, handle)
        audio.size = size
        audio.uploaded_at = self.clock()
        if analysis.decodable:
            audio.state = "available"
            audio.duration = analysis.duration
            audio.voice_duration = analysis.voice_duration
            audio.sample_rate = analysis.sample_rate
            audio.channels = analysis.channels
            audio.format = analysis.format
        else:
            audio.state = "notAvailable"
        return audio

    def _link(self, sp: Space, audio: Audio, identity: str) -> None:
        audio.identity = identity
        sp.identities[identity].audios += 1

    def identify_audio(self, sp: Space, handle: str, identity: Any) -> Audio:
        """Link an audio to an identity, irreversibly: relinking elsewhere is a 409."""
        problem = handle_error(identity, "identity")
        if problem:
            raise bad_request(problem)
        audio = self.audio(sp, handle)
        self.identity(sp, identity)
        if audio.identity is None:
            self._link(sp, audio, identity)
        elif audio.identity != identity:
            raise conflict(f"audio {handle} is already linked to identity {audio.identity}")
        return audio

    def audio_wire(self, sp: Space, audio: Audio) -> dict[str, Any]:
        ident = sp.identities.get(audio.identity) if audio.identity else None
        return {
            "id": audio.id,
            "handle": audio.handle,
            "alias": audio.alias,
            "state": audio.state,
            "duration": format_duration(audio.duration),
            "voiceDuration": format_duration(audio.voice_duration),
            "sampleRate": audio.sample_rate,
            "identity": {"handle": ident.handle, "alias": ident.alias} if ident else None,
            "voiceprints": audio.voiceprints,
            "verifications": audio.verifications,
            "createdAt": format_time(audio.created_at),
            "uploadedAt": format_time(audio.uploaded_at) if audio.uploaded_at else None,
        }

    def list_audios(self, sp: Space, req: PageRequest) -> PageResult[Audio]:
        fields = {"handle": "handle", "createdAt": "created_at", "uploadedAt": "uploaded_at"}
        return _paginate(
            sp.audios.values(),
            req,
            sort_value=lambda it, key: getattr(it, fields[key]),
            texts=lambda it: (it.handle, it.alias),
            date=lambda it: it.created_at,
        )

    # --- voiceprints -------------------------------------------------------------------------

    def create_voiceprint(
        self,
        sp: Space,
        identity: Any,
        model: str | None,
        min_audios: Any,
        handle: Any = None,
        alias: Any = None,
    ) -> Voiceprint:
        problem = handle_error(identity, "identity") or alias_error(alias)
        if handle is not None:
            problem = problem or handle_error(handle)
        if problem:
            raise bad_request(problem)
        low, high = MIN_AUDIOS_RANGE
        if not isinstance(min_audios, int) or isinstance(min_audios, bool):
            raise bad_request("minAudios must be an integer")
        if not low <= min_audios <= high:
            raise bad_request(f"minAudios must be between {low} and {high}, got {min_audios}")
        if not isinstance(model, str):
            raise bad_request('model must be "handle/version" or {"handle", "version"}')
        ident = self.identity(sp, identity)
        if model not in MODELS:
            raise not_found(f"model {model} not found; known: {', '.join(MODELS)}")
        taken = {k.split("/", 1)[1] for k in sp.voiceprints if k.startswith(identity + "/")}
        if handle is None:
            handle = self._new_handle(taken)
        elif handle in taken:
            raise conflict(f"voiceprint {handle} already exists for identity {identity}")
        vp = Voiceprint(self._id(), handle, alias, identity, model, min_audios, self.clock())
        sp.voiceprints[_vp_key(identity, handle)] = vp
        ident.voiceprints += 1
        return vp

    def voiceprint(self, sp: Space, identity: str, handle: str) -> Voiceprint:
        self.identity(sp, identity)
        found = sp.voiceprints.get(_vp_key(identity, handle))
        if found is None:
            raise not_found(f"voiceprint {handle} not found for identity {identity}")
        return found

    def _totals(self, sp: Space, vp: Voiceprint) -> tuple[float, float]:
        audios = [sp.audios[h] for h in vp.audios]
        return (
            sum(a.duration or 0.0 for a in audios),
            sum(a.voice_duration or 0.0 for a in audios),
        )

    def _update_state(self, sp: Space, vp: Voiceprint) -> None:
        """notComputable ⇄ computable by the contract's rule; computed is final."""
        if vp.state == "computed":
            return
        _, voice = self._totals(sp, vp)
        enough = len(vp.audios) >= vp.min_audios and round(voice, 3) >= MIN_TOTAL_VOICE_S
        vp.state = "computable" if enough else "notComputable"

    def add_audio(self, sp: Space, identity: str, handle: str, audio_handle: str) -> Voiceprint:
        vp = self.voiceprint(sp, identity, handle)
        audio = self.audio(sp, audio_handle)
        if vp.state == "computed":
            raise conflict(f"voiceprint {handle} is computed; its audios can no longer change")
        if audio_handle in vp.audios:
            raise conflict(f"audio {audio_handle} is already added to voiceprint {handle}")
        if audio.state == "avaitingFile":
            raise conflict(f"audio {audio_handle} has no file yet; upload it first")
        if audio.identity is not None and audio.identity != identity:
            raise conflict(
                f"audio {audio_handle} belongs to identity {audio.identity}, not {identity}"
            )
        model = MODELS[vp.model]
        reason = requirement_failure(
            audio_handle,
            model,
            vp.min_audios,
            audio.duration,
            audio.sample_rate,
            audio.voice_duration if audio.state == "available" else None,
        )
        if reason:
            raise ApiError(422, reason)
        if audio.identity is None:
            self._link(sp, audio, identity)
        vp.audios.append(audio_handle)
        audio.voiceprints += 1
        self._update_state(sp, vp)
        return vp

    def remove_audio(self, sp: Space, identity: str, handle: str, audio_handle: str) -> Voiceprint:
        vp = self.voiceprint(sp, identity, handle)
        self.audio(sp, audio_handle)
        if vp.state == "computed":
            raise conflict(f"voiceprint {handle} is computed; its audios can no longer change")
        if audio_handle not in vp.audios:
            raise not_found(f"audio {audio_handle} is not added to voiceprint {handle}")
        vp.audios.remove(audio_handle)
        sp.audios[audio_handle].voiceprints -= 1
        self._update_state(sp, vp)
        return vp

    def compute(self, sp: Space, identity: str, handle: str, actor: User) -> Voiceprint:
        """computable → computed, once; costs the space owner one credit and writes a record."""
        vp = self.voiceprint(sp, identity, handle)
        if vp.state == "computed":
            raise conflict(f"voiceprint {handle} is already computed")
        if vp.state != "computable":
            _, voice = self._totals(sp, vp)
            raise conflict(
                f"voiceprint {handle} is not computable: {len(vp.audios)} of {vp.min_audios} "
                f"audios, {voice:.2f} s of the {MIN_TOTAL_VOICE_S} s voice needed"
            )
        left = self.credits_left(sp.owner)
        if left is not None and left < 1:
            raise ApiError(429, "Not enough credits")
        now = self.clock()
        vp.state = "computed"
        vp.computed_at = now
        self.credits_used[sp.owner] = self.credits_used.get(sp.owner, 0) + 1
        ident = sp.identities[identity]
        self.records.append(
            Record(
                id=self._id(),
                handle=self._new_handle({r.handle for r in self.records}),
                actor={"handle": actor.handle, "alias": actor.alias},
                model=vp.model,
                voiceprint={
                    "handle": vp.handle,
                    "alias": vp.alias,
                    "state": vp.state,
                    "identity": {"handle": ident.handle, "alias": ident.alias},
                },
                space={"handle": sp.handle, "alias": sp.alias, "owner": sp.owner},
                owner=self.owner_ref(sp.owner),
                computed_at=now,
            )
        )
        return vp

    def voiceprint_wire(self, sp: Space, vp: Voiceprint) -> dict[str, Any]:
        total, voice = self._totals(sp, vp)
        ident = sp.identities[vp.identity]
        return {
            "id": vp.id,
            "handle": vp.handle,
            "alias": vp.alias,
            "state": vp.state,
            "model": vp.model,
            "identity": {"handle": ident.handle, "alias": ident.alias},
            "totalDuration": format_duration(total),
            "totalVoiceDuration": format_duration(voice),
            "minAudios": vp.min_audios,
            "audios": len(vp.audios),
            "verifications": vp.verifications,
            "createdAt": format_time(vp.created_at),
            "computedAt": format_time(vp.computed_at) if vp.computed_at else None,
        }

    def list_voiceprints(self, sp: Space, identity: str, req: PageRequest) -> PageResult[Any]:
        self.identity(sp, identity)
        fields = {"handle": "handle", "createdAt": "created_at", "computedAt": "computed_at"}
        return _paginate(
            (vp for vp in sp.voiceprints.values() if vp.identity == identity),
            req,
            sort_value=lambda it, key: getattr(it, fields[key]),
            texts=lambda it: (it.handle, it.alias),
            date=lambda it: it.created_at,
        )

    def list_voiceprint_audios(
        self, sp: Space, identity: str, handle: str, req: PageRequest
    ) -> PageResult[Audio]:
        vp = self.voiceprint(sp, identity, handle)
        fields = {"handle": "handle", "createdAt": "created_at", "uploadedAt": "uploaded_at"}
        return _paginate(
            (sp.audios[h] for h in vp.audios),
            req,
            sort_value=lambda it, key: getattr(it, fields[key]),
            texts=lambda it: (it.handle, it.alias),
            date=lambda it: it.created_at,
        )

    # --- usage records -----------------------------------------------------------------------

    def _list_records(self, owner: str, req: PageRequest) -> PageResult[Record]:
        return _paginate(
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

    # --- verifications ------------------------------------------------------------------------

    def create_verification(
        self, sp: Space, audio: Any, identity: Any, voiceprint: Any, alias: Any
    ) -> Verification:
        """Score an audio against a computed voiceprint (synchronous: performed at once).

        The score is a stand-in, but a stable one: an audio of the voiceprint's own identity
        scores high, any other audio low; an audio with too little voice gets no score.
        """
        for name, value in (("audio", audio), ("identity", identity), ("voiceprint", voiceprint)):
            problem = handle_error(value, name)
            if problem:
                raise bad_request(problem)
        problem = alias_error(alias)
        if problem:
            raise bad_request(problem)
        ident = self.identity(sp, identity)
        vp = self.voiceprint(sp, identity, voiceprint)
        au = self.audio(sp, audio)
        if vp.state != "computed":
            raise conflict(f"voiceprint {voiceprint} is not computed yet")
        if au.state != "available":
            raise conflict(f"audio {audio} is not available (state {au.state})")
        now = self.clock()
        wobble = int(hashlib.sha256(f"{au.id}{vp.id}".encode()).hexdigest()[:4], 16) / 0xFFFF
        if (au.voice_duration or 0.0) < 1.0:
            state, score = "performedWithoutScore", None
        elif au.identity == identity:
            state, score = "performed", round(0.85 + 0.14 * wobble, 4)
        else:
            state, score = "performed", round(0.05 + 0.25 * wobble, 4)
        ver = Verification(
            self._id(),
            self._new_handle(sp.verifications),
            alias,
            state,
            vp.model,
            au.handle,
            identity,
            vp.handle,
            score,
            now,
            now,
        )
        sp.verifications[ver.handle] = ver
        ident.verifications += 1
        vp.verifications += 1
        au.verifications += 1
        return ver

    def verification_wire(self, sp: Space, ver: Verification) -> dict[str, Any]:
        au = sp.audios[ver.audio]
        vp = sp.voiceprints[_vp_key(ver.identity, ver.voiceprint)]
        return {
            "id": ver.id,
            "handle": ver.handle,
            "alias": ver.alias,
            "state": ver.state,
            "model": ver.model,
            "audio": {"handle": au.handle, "alias": au.alias},
            "voiceprint": {"handle": vp.handle, "alias": vp.alias},
            "identity": {"handle": ver.identity},
            "score": ver.score,
            "createdAt": format_time(ver.created_at),
            "performedAt": format_time(ver.performed_at) if ver.performed_at else None,
        }

    # --- models ------------------------------------------------------------------------------

    @staticmethod
    def models() -> list[Model]:
        return list(MODELS.values())

    # --- counts for stats --------------------------------------------------------------------

    def iter_audios(self) -> Iterator[tuple[Space, Audio]]:
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
        return _SNAPSHOT.dump_json(snap)

    def restore_json(self, data: bytes) -> None:
        """Replace the world with a snapshot. Users, orgs and spaces of the current config that
        the snapshot lacks are kept, so a config that grows still applies after a restart."""
        snap = _SNAPSHOT.validate_json(data)
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
        # Handles and ids must not repeat what the snapshot holds, yet stay reproducible.
        self._rng = random.Random(f"{self._seed}:{hashlib.sha256(data).hexdigest()}")
