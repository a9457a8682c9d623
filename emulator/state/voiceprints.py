"""Voiceprints and verifications: create, add and remove audios, compute (the billed step:
credits checked, one charge and one usage record), read, list, render, verify.

Owns: the voiceprint state machine (notComputable → computable → computed) and the model
requirements (422).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from emulator.pagination import PageRequest, PageResult
from emulator.processing import Kind
from emulator.records import (
    ApiError,
    Audio,
    Record,
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
    alias_error,
    format_duration,
    format_time,
    handle_error,
    requirement_failure,
)
from emulator.state.audios import Audios
from emulator.state.credits import Credits
from emulator.state.world import paginate_or_400, vp_key


class Voiceprints(Audios, Credits):
    """The voiceprints operations of `State`."""

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
        # Looked up by key, not by scanning the space's voiceprints (quadratic over a big run).
        taken = _IdentityHandles(sp.voiceprints, identity)
        if handle is None:
            handle = self._new_handle(taken)
        elif handle in taken:
            raise conflict(f"voiceprint {handle} already exists for identity {identity}")
        vp = Voiceprint(self._id(), handle, alias, identity, model, min_audios, self.clock())
        sp.voiceprints[vp_key(identity, handle)] = vp
        ident.voiceprints += 1
        return vp

    def voiceprint(self, sp: Space, identity: str, handle: str) -> Voiceprint:
        self.identity(sp, identity)
        found = sp.voiceprints.get(vp_key(identity, handle))
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
            key = vp_key(identity, handle)
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
                handle=self.record_handle(),
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
        return paginate_or_400(
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
        return paginate_or_400(
            (sp.audios[h] for h in vp.audios),
            req,
            sort_value=lambda it, key: getattr(it, fields[key]),
            texts=lambda it: (it.handle, it.alias),
            date=lambda it: it.created_at,
        )

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
        vp = sp.voiceprints[vp_key(ver.identity, ver.voiceprint)]
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


class _IdentityHandles:
    """The voiceprint handles of one identity, as a container over the space's voiceprints."""

    def __init__(self, voiceprints: dict[str, Voiceprint], identity: str) -> None:
        self._voiceprints = voiceprints
        self._identity = identity

    def __contains__(self, handle: object) -> bool:
        return isinstance(handle, str) and vp_key(self._identity, handle) in self._voiceprints
