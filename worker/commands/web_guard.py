"""The status page's guard (`enroller web`, issue 31): who may read it, and how it answers.

Owns: the one middleware every request and answer of the page goes through, the token rule
and the bind rule. It is the whole safety story of the page:

- only GET and HEAD (405 otherwise), so nothing can be changed through the page; the one
  exception is the login form's POST, which changes nothing but the browser's cookie;
- with a token set, every request shows it: `Authorization: Bearer <token>`, or the cookie
  the login form sets (HttpOnly, SameSite=Strict; it holds an HMAC of the token, never the
  token itself); the comparison is constant-time;
- without a token, only requests naming a loopback host (`Host: 127.0.0.1:8780`) are
  answered: a web site that points its own name at 127.0.0.1 (DNS rebinding) reads nothing;
- every answer carries a strict Content-Security-Policy (scripts and styles from this server
  only: no inline script, so the refresh script is a file), `frame-ancestors 'none'`,
  nosniff, no referrer, and `Cache-Control: no-store` on everything but the static files.

It refuses to start on an address other than loopback without ENROLLER_WEB_TOKEN: RQ
dashboard's default (0.0.0.0, no login) is how such pages leak. It works with every worker
stopped: it reads only the queue's files (and Redis, for the fleet, when configured).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from worker.base.errors import WorkerMustStop
from worker.config.settings import Settings

HERE = Path(__file__).parent
COOKIE = "enroller_web"
SAFE_METHODS = frozenset({"GET", "HEAD"})
LOGIN_PATH = "/login"
STATIC_PREFIX = "/static/"
MAX_BODY = 4096  # the login form's body; nothing else may send one
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
TOKEN_KEY: web.AppKey[str | None] = web.AppKey("token", str)
SETTINGS_KEY: web.AppKey[Settings] = web.AppKey("settings", Settings)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebRefused(WorkerMustStop):
    """The page would be unsafe as configured; the message says what to set."""


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve to anything


def check_bind(settings: Settings) -> None:
    """Raise WebRefused when the page would listen beyond this machine with no token."""
    if settings.web_token is None and not is_loopback(settings.web_host):
        raise WebRefused(
            f"enroller web refuses to listen on {settings.web_host} without a token: anyone "
            "who can reach it would read the queue. Set ENROLLER_WEB_TOKEN (or "
            "ENROLLER_WEB_TOKEN_FILE), or listen on 127.0.0.1."
        )


def _host_name(host: str) -> str:
    """The name of a Host header without its port ("[::1]:8780" -> "::1")."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def session_value(token: str) -> str:
    """What the login cookie holds: an HMAC of the token, so the cookie is not the token."""
    return hmac.new(token.encode(), b"enroller-web-session", hashlib.sha256).hexdigest()


def authorized(request: web.Request, token: str) -> bool:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer ") and hmac.compare_digest(
        header[7:].strip().encode(), token.encode()
    ):
        return True
    cookie = request.cookies.get(COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), session_value(token).encode())


def _headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.path.startswith(STATIC_PREFIX):
        response.headers.setdefault("Cache-Control", "no-cache")
    else:
        response.headers["Cache-Control"] = "no-store"


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Methods, token, headers: every request and answer passes here (the module's docstring)."""
    login_post = request.method == "POST" and request.path == LOGIN_PATH
    try:
        if request.method not in SAFE_METHODS and not login_post:
            raise web.HTTPMethodNotAllowed(request.method, sorted(SAFE_METHODS))
        token = request.app[TOKEN_KEY]
        if token is None and not is_loopback(_host_name(request.host)):
            # No token: loopback only, in the Host header too. A site that points its own
            # name at 127.0.0.1 (DNS rebinding) must not read the page through a browser.
            raise web.HTTPForbidden(text="without ENROLLER_WEB_TOKEN, only loopback names")
        public = request.path == LOGIN_PATH or request.path.startswith(STATIC_PREFIX)
        if token is not None and not public and not authorized(request, token):
            if "text/html" in request.headers.get("Accept", ""):
                raise web.HTTPSeeOther(LOGIN_PATH)
            raise web.HTTPUnauthorized(
                text="a token is needed: Authorization: Bearer <ENROLLER_WEB_TOKEN>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        response = await handler(request)
    except web.HTTPException as exc:  # raised, never returned (aiohttp's rule): headers too
        _headers(request, exc)
        raise
    _headers(request, response)
    return response
