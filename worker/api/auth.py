"""Who the client is: an API key, or a handle and password exchanged for a session token.

Owns: the credentials and the token (one `Authenticator` per client, shared by its per-job
views), signing in once and once again after a 401 in credentials mode, who the credentials
are (the cached `User`), and masking every secret it holds in server text before that text
reaches an error. It never decides when to sign in again (retry_rules.py does) and never sends
a request itself: the request loop hands it the sign-in (`SignIn`) it sends through itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import structlog
from pydantic import SecretStr

from worker.api.governor import Governor
from worker.api.schemas import User
from worker.base.log import REDACTOR
from worker.base.masking import MASK


@dataclass(frozen=True, slots=True)
class ApiKeyAuth:
    """A long-lived API key, sent as the Bearer token of every request."""

    key: SecretStr


@dataclass(frozen=True, slots=True)
class CredentialsAuth:
    """A user handle and password, exchanged for a session token on first use."""

    handle: str
    password: SecretStr


Auth = ApiKeyAuth | CredentialsAuth

# `POST /auth/credentials` through the request loop: the credentials in, a session token out.
SignIn = Callable[[CredentialsAuth], Awaitable[SecretStr]]


class Authenticator:
    """The credentials side of the client: the key, or the session token and its generation."""

    def __init__(self, auth: Auth, governor: Governor) -> None:
        self.auth = auth
        self._governor = governor
        self.token: SecretStr | None = None
        self.generation = 0  # which sign-in produced the token
        self.user: User | None = None  # who the credentials are, once asked
        self._lock = anyio.Lock()
        self._log = structlog.get_logger("worker.api")
        # Defence in depth: whatever logging the CLI configured masks these values too.
        for secret in self.secrets():
            REDACTOR.add(secret)

    @property
    def credentials(self) -> CredentialsAuth | None:
        """The handle and password, in credentials mode (None with an API key)."""
        return self.auth if isinstance(self.auth, CredentialsAuth) else None

    def secrets(self) -> list[str]:
        out = []
        if isinstance(self.auth, ApiKeyAuth):
            out.append(self.auth.key.get_secret_value())
        else:
            out.append(self.auth.password.get_secret_value())
        if self.token is not None:
            out.append(self.token.get_secret_value())
        return [s for s in out if s]

    def scrub(self, text: str) -> str:
        """Server text may echo what we sent; mask our secrets before it reaches an error."""
        for secret in self.secrets():
            text = text.replace(secret, MASK)
        return text

    async def bearer(self, sign_in: SignIn) -> tuple[str, int]:
        """The token to send and its generation (which sign-in produced it)."""
        if isinstance(self.auth, ApiKeyAuth):
            return self.auth.key.get_secret_value(), 0
        if self.token is None:
            async with self._lock:
                if self.token is None:
                    await self._sign_in(sign_in)
        assert self.token is not None
        return self.token.get_secret_value(), self.generation

    async def renew(self, generation: int, sign_in: SignIn) -> None:
        """Sign in again, unless another task already did since `generation` was used."""
        async with self._lock:
            if self.generation == generation:
                self._governor.renewed()
                self._log.info("api.sign_in_again", reason="401")
                await self._sign_in(sign_in)

    async def _sign_in(self, sign_in: SignIn) -> None:
        assert isinstance(self.auth, CredentialsAuth)
        token = await sign_in(self.auth)
        self.token = token
        self.generation += 1
        REDACTOR.add(token.get_secret_value())
