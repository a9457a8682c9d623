"""An owner's credits: its limit (the world config's, or the default) and what is left.

Owns: the balance every billed call is checked against; the charge itself is made by the
compute that bills (voiceprints.py), once, with its usage record.
"""

from __future__ import annotations

from emulator.state.world import World


class Credits(World):
    """The credits operations of `State`."""

    # --- credits ---------------------------------------------------------------------------

    def credit_limit(self, owner: str) -> int | None:
        return self.credit_overrides.get(owner, self.default_credits)

    def credits_left(self, owner: str) -> int | None:
        limit = self.credit_limit(owner)
        return None if limit is None else max(0, limit - self.credits_used.get(owner, 0))
