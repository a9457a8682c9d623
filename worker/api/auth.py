"""Who the client is: an API key, or a handle and password exchanged for a session token.

Owns: the credentials and the token, signing in (and once again after a 401 in credentials
mode), who the credentials are (`get_user`), and masking every secret it holds in server text
before that text reaches an error. It never decides when to sign in again (retry_rules.py
does) and never sends a request itself but the sign-in, through the request loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import structlog
from pydantic import BaseModel, SecretStr

from worker.api.governor import Governor
from worker.api.schemas import Credentials, TokenResponse, User
from worker.base.log import REDACTOR
from worker.base.masking import MASK

if TYPE_CHECKING:
    from worker.api.transport import Answer

M = TypeVar("M", bound=BaseModel)


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


class Authenticated:
    """The credentials side of `ApiClient`, which sets these attributes and provides the
    request loop (loop.py) that `_sign_in` and `get_user` send through."""

    governor: Governor
    _auth: Auth
    _token: SecretStr | None
    _token_generation: int
    _auth_lock: anyio.Lock
    _user: User | None
    _log: structlog.stdlib.BoundLogger

    if TYPE_CHECKING:  # provided by loop.RequestLoop

        async def _call(self, method: str, route: str, **kw: Any) -> Answer: ...

        def _parse(self, answer: Answer, model: type[M], method: str, route: str) -> M: ...

        async def _get(self, route: str, model: type[M], **path: str) -> M: ...

    def _secrets(self) -> list[str]:
        out = []
        if isinstance(self._auth, ApiKeyAuth):
            out.append(self._auth.key.get_secret_value())
        else:
            out.append(self._auth.password.get_secret_value())
        if self._token is not None:
            out.append(self._token.get_secret_value())
        return [s for s in out if s]

    def _scrub(self, text: str) -> str:
        """Server text may echo what we sent; mask our secrets before it reaches an error."""
        for secret in self._secrets():
            text = text.replace(secret, MASK)
        return text

    async def _bearer(self) -> tuple[str, int]:
        """The token to send and its generation (which sign-in produced it)."""
        if isinstance(self._auth, ApiKeyAuth):
            return self._auth.key.get_secret_value(), 0
        if self._token is None:
            async with self._auth_lock:
                if self._token is None:
                    await self._sign_in()
        assert self._token is not None
        return self._token.get_secret_value(), self._token_generation

    async def _renew(self, generation: int) -> None:
        """Sign in again, unless another task already did since `generation` was used."""
        async with self._auth_lock:
            if self._token_generation == generation:
                self.governor.renewed()
                self._log.info("api.sign_in_again", reason="401")
                await self._sign_in()

    async def _sign_in(self) -> None:
        """`POST /auth/credentials`. SAFE: each call just issues another session token."""
        assert isinstance(self._auth, CredentialsAuth)
        body = Credentials(handle=self._auth.handle, password=self._auth.password).to_wire()
        answer = await self._call("POST", "/auth/credentials", json=body, auth=False)
        token = self._parse(answer, TokenResponse, "POST", "/auth/credentials").token
        self._token = token
        self._token_generation += 1
        REDACTOR.add(token.get_secret_value())

    async def get_user(self) -> User:
        """`GET /user`: the caller's handle and orgs (SAFE). Cached after the first call."""
        if self._user is None:
            self._user = await self._get("/user", User)
        return self._user
