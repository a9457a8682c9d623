"""Redis key names of one API account: derived from a hash, never from the secret itself."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

PREFIX = "enroller"


def account_id(base_url: str, credential_identity: str) -> str:
    """A short stable id of (API base URL, who the credential is): the budget's owner.

    `credential_identity` is the caller's handle as `GET /user` tells it, not the key: two
    workers with the same account share one budget, and no key ever reaches Redis.
    """
    text = f"{base_url.rstrip('/')}\n{credential_identity}"
    return hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()[:20]


@dataclass(frozen=True)
class AccountKeys:
    """Every key of one account. `{…}` is a Redis Cluster hash tag: one slot for the script."""

    account: str

    @property
    def _base(self) -> str:
        return f"{PREFIX}:{{{self.account}}}"

    @property
    def tat(self) -> str:
        return f"{self._base}:gcra"  # theoretical arrival time of the next request (µs)

    @property
    def pause(self) -> str:
        return f"{self._base}:pause"  # no request before this instant (µs, Redis clock)

    @property
    def credits(self) -> str:
        return f"{self._base}:credits"  # present while billed calls are paused: the message

    @property
    def members(self) -> str:
        return f"{self._base}:members"  # sorted set: worker id → last heartbeat (s, Redis clock)

    def member(self, worker_id: str) -> str:
        return f"{self._base}:member:{worker_id}"  # JSON of one worker, with a TTL

    def lock(self, key: str) -> str:
        digest = hashlib.sha256(key.encode("utf-8", "backslashreplace")).hexdigest()[:32]
        return f"{self._base}:lock:{digest}"
