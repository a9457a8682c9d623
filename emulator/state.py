"""The emulated service's world and every rule that changes it.

Owns: users, orgs, sessions, spaces, identities, audios, voiceprints, usage records and
verifications; access control (403), existence (404), collisions (409), model requirements
(422), credits (429), voiceprint state transitions, wire rendering and the JSON snapshot used for
persistence. Synchronous and free of I/O: the aiohttp layer (`app.py`) calls one method per
request and never mutates anything itself, so every rule is testable without a socket.
Audio decoding happens before a method is called (see `audio.py`); the result is passed in.
The records themselves are in `records.py`; the delays of asynchronous processing
(`--file-delay-ms`, `--compute-delay-ms`) are scheduled by `processing.py` and applied here,
lazily, whenever a request reads the world (`settle`).
"""

from __future__ import annotations

import hashlib
import random
import secrets
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from emulator.audio import Analysis
from emulator.config import WorldConfig
from emulator.pagination import PageRequest, PageResult, PaginationError, paginate
from emulator.processing import Kind, Processing
from emulator.records import (
    SNAPSHOT_ADAPTER,
    SNAPSHOT_VERSION,
    ApiError,
    Audio,
    Identity,
    Org,
    Record,
    Session,
    Snapshot,
    Space,
    User,
    Verification,
    Voiceprint,
    bad_request,
    conflict,
    not_found,
)
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

__all__ = ["ApiError", "Space", "State", "User", "bad_request", "conflict", "not_found"]


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
        if audio.state != "avaitingFile" or audio.ready_state is not None:
            raise conflict(f"audio {handle} already has a file; an audio takes exactly one")
        return audio

    def attach_file(self, sp: Space, handle: str, analysis: Analysis, size: int) -> Audio:
        """Store a file's measurements; the second file for one audio is a 409."""
        audio = self.check_awaiting_file(sp, handle)
        audio.size = size
        audio.uploaded_at = now = self.clock()
        if analysis.decodable:
            ready = "available"
            audio.duration = analysis.duration
            audio.voice_duration = analysis.voice_duration
            audio.sample_rate = analysis.sample_rate
            audio.channels = analysis.channels
            audio.format = analysis.format
        else:
            ready = "notAvailable"
        if self.processing.delayed(Kind.FILE):
            audio.ready_state = ready  # still reads avaitingFile until then
            audio.ready_at = self.processing.schedule(
                Kind.FILE, f"{sp.owner}/{sp.handle}", handle, now
            )
        else:
            audio.state = ready
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
        measured = audio.state != "avaitingFile"  # nothing is known while still processing
        return {
            "id": audio.id,
            "handle": audio.handle,
            "alias": audio.alias,
            "state": audio.state,
            "duration": format_duration(audio.duration if measured else None),
            "voiceDuration": format_duration(audio.voice_duration if measured else None),
            "sampleRate": audio.sample_rate if measured else None,
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
        self._check_not_computing(vp)
        if vp.state == "computed":
            raise conflict(f"voiceprint {handle} is computed; its audios can no longer change")
        if audio_handle in vp.audios:
            raise conflict(f"audio {audio_handle} is already added to voiceprint {handle}")
        if audio.ready_state is not None:
            raise conflict(f"audio {audio_handle} is still being processed; not available yet")
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
        self._check_not_computing(vp)
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
        self._check_not_computing(vp)
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
        # Charged when accepted, so that a compute in progress cannot overdraw the balance.
        self.credits_used[sp.owner] = self.credits_used.get(sp.owner, 0) + 1
        actor_ref = {"handle": actor.handle, "alias": actor.alias}
        if self.processing.delayed(Kind.COMPUTE):
            key = _vp_key(identity, handle)
            vp.computing_actor = actor_ref
            vp.computing_until = self.processing.schedule(
                Kind.COMPUTE, f"{sp.owner}/{sp.handle}", key, now
            )
            return vp  # still computable: it reads computed once the delay has passed
        self._finish_compute(sp, vp, actor_ref, now)
        return vp

    def _check_not_computing(self, vp: Voiceprint) -> None:
        if vp.computing_until is not None:
            raise conflict(f"voiceprint {vp.handle} is being computed; not computed yet")

    def _finish_compute(
        self, sp: Space, vp: Voiceprint, actor: dict[str, Any], now: datetime
    ) -> None:
        """computable → computed, and the usage record that bills it."""
        vp.state = "computed"
        vp.computed_at = now
        vp.computing_until = vp.computing_actor = None
        ident = sp.identities[vp.identity]
        self.records.append(
            Record(
                id=self._id(),
                handle=self._new_handle({r.handle for r in self.records}),
                actor=actor,
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
        self.settle()
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
