"""A voiceprint's life after it is made: renamed (PATCH) or deleted (DELETE).

Both routes are [inferred] in api-contract.md §3: the reference says handles "can be changed
later" and documents the other resources' deletes, but neither was seen. What the emulator
decides for them is ours, chosen so that a swap (issue 28) can be acted out truly:

- a rename keeps the voiceprint itself (id, state, audios, computedAt, verifications); only
  its handle and alias change. Its usage records keep the handle it had when computed, as a
  bill does.
- a delete removes the voiceprint only: its audios stay in the space (each counts one
  voiceprint fewer), its usage records stay, and the identity counts one voiceprint fewer.
- both are refused (409) while a delayed compute is pending: that compute was charged and
  will write its record under the voiceprint's key, which must still be there.
"""

from __future__ import annotations

from typing import Any

from emulator.records import Space, Voiceprint, bad_request, conflict
from emulator.rules import alias_error, handle_error
from emulator.state.voiceprints import Voiceprints
from emulator.state.world import vp_key

UNSET: Any = object()  # a PATCH field that was not sent (None is "alias: null", which clears)


class VoiceprintLifecycle(Voiceprints):
    """The rename and delete operations of `State`."""

    def rename_voiceprint(
        self, sp: Space, identity: str, handle: str, new_handle: Any = UNSET, alias: Any = UNSET
    ) -> Voiceprint:
        """Give a voiceprint another handle and/or alias; everything else stays.

        The new handle is validated as at create (400) and must not be another voiceprint's
        of the identity (409); its own current handle is a no-op. An alias sent as null clears it.
        """
        if new_handle is not UNSET:
            problem = handle_error(new_handle)
            if problem:
                raise bad_request(problem)
        if alias is not UNSET:
            problem = alias_error(alias)
            if problem:
                raise bad_request(problem)
        vp = self.voiceprint(sp, identity, handle)
        moving = new_handle is not UNSET and new_handle != handle
        if moving and vp_key(identity, new_handle) in sp.voiceprints:
            raise conflict(f"voiceprint {new_handle} already exists for identity {identity}")
        if moving or alias is not UNSET:
            self._check_not_computing(vp)
        if moving:
            # Popped and put back at the end: O(1) in a space of many voiceprints. Lists sort
            # by a field, so only exact ties of that field may come in another order.
            del sp.voiceprints[vp_key(identity, handle)]
            sp.voiceprints[vp_key(identity, new_handle)] = vp
            vp.handle = new_handle
            for ver in sp.verifications.values():
                if ver.identity == identity and ver.voiceprint == handle:
                    ver.voiceprint = new_handle
        if alias is not UNSET:
            vp.alias = alias
        return vp

    def delete_voiceprint(self, sp: Space, identity: str, handle: str) -> None:
        """Remove a voiceprint; its audios and usage records stay (see the module's doc)."""
        vp = self.voiceprint(sp, identity, handle)
        self._check_not_computing(vp)
        del sp.voiceprints[vp_key(identity, handle)]
        for audio_handle in vp.audios:
            audio = sp.audios.get(audio_handle)
            if audio is not None:
                audio.voiceprints -= 1
        sp.identities[identity].voiceprints -= 1
