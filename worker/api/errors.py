"""The error tree of the API client: its shape says what the caller may do next.

Owns: every exception the client raises, and the pure classification of an HTTP error response
into one of them (`error_from_response`). Must never hold a secret: errors carry the method, the
route *template* (never headers, never the token) and the server's message, which the client
scrubs of known secrets before building the error.

```
ApiError
├── OutcomeKnown            the request certainly took effect or certainly did not
│   ├── NotSent             the transport failed before the request left: safe to repeat anything
│   └── HttpStatusError     the server answered with an error status (.status, .message)
│       ├── BadRequest 400 · Unauthorized 401 · Forbidden 403 · NotFound 404
│       ├── MethodNotAllowed 405 (the API does not offer this) · Conflict 409
│       ├── PayloadTooLarge 413 · Unprocessable 422
│       ├── RateLimited 429 + Retry-After       (the client waits it out and resends)
│       ├── CreditsExhausted 429, no Retry-After (billed calls pause for the whole process)
│       └── ServerError 5xx                     (on a safe-to-repeat call only; see below)
├── OutcomeUnknown          timeout, reset or 5xx after a non-idempotent request was sent:
│                           it may have taken effect; reconcile (search) before repeating
└── InvalidResponse         a success status whose body is not what the contract says
```

A 5xx answer to a request that is *not* safe to repeat (creating an audio or a verification) is
raised as `OutcomeUnknown` with `.status` set: the server may have committed before failing, so
for the caller it is the same situation as a timeout.
"""

from __future__ import annotations

import email.utils
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar


class ApiError(Exception):
    """Base of every error the client raises.

    `method` and `route` (a template such as `/spaces/{owner}/{space}/audios`) say which call
    failed; `attempts` is how many times the client sent it (retries included).
    """

    def __init__(
        self, message: str, *, method: str = "", route: str = "", attempts: int = 1
    ) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.route = route
        self.attempts = attempts

    def __str__(self) -> str:
        where = f"{self.method} {self.route}: " if self.method else ""
        return f"{where}{self.describe()}"

    def describe(self) -> str:
        """The reason without the call site; subclasses add their status or kind."""
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r}, attempts={self.attempts})"


class OutcomeKnown(ApiError):
    """The request certainly took effect or certainly did not: the caller may act on it."""


class NotSent(OutcomeKnown):
    """The transport failed before the request was written (DNS, refused, connect timeout).

    Nothing reached the server, so even a non-idempotent create may be sent again.
    """

    def describe(self) -> str:
        return f"not sent ({self.message})"


class HttpStatusError(OutcomeKnown):
    """The server answered with an error status; `message` is its human-readable reason."""

    status: int = 0
    # Whether the condition can go away by itself, so that a later attempt may succeed.
    transient: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str = "",
        route: str = "",
        attempts: int = 1,
    ) -> None:
        super().__init__(message, method=method, route=route, attempts=attempts)
        if status is not None:
            self.status = status

    def describe(self) -> str:
        return f"HTTP {self.status}: {self.message}"


class BadRequest(HttpStatusError):
    """400: malformed request, invalid handle, bad pagination. Permanent for this input."""

    status = 400


class Unauthorized(HttpStatusError):
    """401: missing, invalid or expired token, after the one sign-in renewal allowed per call."""

    status = 401


class Forbidden(HttpStatusError):
    """403: the space is not owned by the caller or one of its orgs. Permanent for that space."""

    status = 403


class NotFound(HttpStatusError):
    """404: no such resource (expected while reconciling)."""

    status = 404


class MethodNotAllowed(HttpStatusError):
    """405: the service does not offer this operation on this resource (e.g. a voiceprint's
    rename or delete, [inferred] in api-contract.md §3). Permanent: the caller learns that this
    API lacks it and takes another way, never asking again. `allow` lists the methods the
    answer's `Allow` header says the resource takes (empty when it says none)."""

    status = 405

    def __init__(self, message: str, *, allow: tuple[str, ...] = (), **kw: Any) -> None:
        super().__init__(message, **kw)
        self.allow = allow


class Conflict(HttpStatusError):
    """409: duplicate handle, audio already added, voiceprint already computed, second file…

    `after_unknown_outcome` is true when an earlier attempt of this same call had an unknown
    outcome: the conflict is then most likely with the effect of that earlier attempt.
    """

    status = 409
    after_unknown_outcome: bool = False


class PayloadTooLarge(HttpStatusError):
    """413: the audio file is larger than the service accepts. Permanent."""

    status = 413


class Unprocessable(HttpStatusError):
    """422: the audio does not meet the model's requirements; `message` says which."""

    status = 422


class RateLimited(HttpStatusError):
    """429 with `Retry-After`: the request rate was exceeded; nothing was done.

    The client handles it itself: every request waits until then, however long, and the call
    is resent; throttling is never a failure (api-contract.md §5). `retry_after` is None when
    the header is there but unreadable (the client then waits a default pause).
    """

    status = 429
    transient = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class CreditsExhausted(HttpStatusError):
    """429 without `Retry-After`: the owner cannot pay ("Not enough credits", in any wording).

    Raised by the server on any call it bills, and afterwards raised by the client itself,
    without a request, for every compute (and every call on a route that got one) until the
    governor's `credits_recheck` has passed. Never retried in a loop. `sent` is false when the
    client refused the call from its own credits state.
    """

    status = 429

    def __init__(self, message: str, *, sent: bool = True, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.sent = sent


class ServerError(HttpStatusError):
    """5xx on a call that is safe to repeat, after the retries allowed were spent."""

    status = 500
    transient = True


class OutcomeUnknown(ApiError):
    """The request was (or may have been) sent, and no answer says what happened.

    `kind` is `"timeout"`, `"connection"` (reset, dropped) or `"server"` (5xx to a
    non-idempotent request; `status` is then set). The request may have taken effect: a
    caller must reconcile (e.g. search the audio by its `sha256:` alias) before repeating it.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        status: int | None = None,
        method: str = "",
        route: str = "",
        attempts: int = 1,
    ) -> None:
        super().__init__(message, method=method, route=route, attempts=attempts)
        self.kind = kind
        self.status = status

    def describe(self) -> str:
        status = f" HTTP {self.status}" if self.status else ""
        return f"outcome unknown ({self.kind}{status}): {self.message}"


# Kinds of `OutcomeUnknown` where an answer came but cannot be used; the same request sent
# again would most likely get the same answer, so the loop does not resend it blind.
UNUSABLE_KINDS = frozenset({"too_large", "unreadable", "redirect", "mismatch"})


def redirect_error(
    status: int, location: str | None, *, method: str = "", route: str = ""
) -> OutcomeUnknown:
    """A 3xx, never followed (the key must not go where we did not choose) and never parsed.

    The target is named without its query or user part, which may hold secrets.
    """
    target = "nowhere"
    if location:
        target = location.split("?", 1)[0].split("#", 1)[0]
        if "@" in target.split("//", 1)[-1].split("/", 1)[0]:
            scheme, _, rest = target.partition("//")
            target = f"{scheme}//{rest.split('@', 1)[1]}"
        target = target[:200]
    return OutcomeUnknown(
        f"the API answered {status} (to {target}): check ENROLLER_API_URL",
        kind="redirect",
        status=status,
        method=method,
        route=route,
    )


class ApiPaused(ApiError):
    """Not sent: the API asked every request to wait until `until` (a Retry-After above
    `ENROLLER_MAX_RETRY_AFTER`), and this process does not wait that long (`run --once`).
    Nothing was done; the work resumes from the journal on a later run."""

    def __init__(self, until: datetime, *, method: str = "", route: str = "") -> None:
        when = until.isoformat(timespec="seconds")
        super().__init__(
            f"the API asked to wait until {when} (above ENROLLER_MAX_RETRY_AFTER)",
            method=method,
            route=route,
        )
        self.until = until


class InvalidResponse(ApiError):
    """A success status with a body that does not match the contract (a bug on one side)."""


_BY_STATUS: dict[int, type[HttpStatusError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: Unprocessable,
}


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds to wait (≥ 0), or None when absent or unreadable.

    RFC 9110 §10.2.3 allows delay-seconds or an HTTP-date; a date is turned into the seconds
    from `now` (default: the current UTC time) until then, 0 when it has passed already.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until(text, now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


def _seconds_until(http_date: str, now: datetime | None) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" or an obsolete form: RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    now = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def server_message(body: bytes | str, fallback: str) -> str:
    """The `message` of an error body, or a short excerpt of a body that is not the contract's."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"]
    text = text.strip()
    return text[:200] if text else fallback


def error_from_response(
    status: int,
    message: str,
    headers: Mapping[str, str],
    *,
    method: str = "",
    route: str = "",
    attempts: int = 1,
    now: datetime | None = None,
) -> HttpStatusError:
    """Classify an error answer (status ≥ 400) into the error tree. Pure but for `now`.

    A 429 *with* a `Retry-After` header is throttling (seconds or an HTTP-date, from `now`);
    a 429 *without* one is credits, whatever its wording (api-contract.md §5): a service that
    wants to be asked again says when.
    """
    kw: dict[str, Any] = {"method": method, "route": route, "attempts": attempts}
    if status == 429:
        header = headers.get("Retry-After")
        if header is None:
            return CreditsExhausted(message, **kw)
        return RateLimited(message, retry_after=parse_retry_after(header, now), **kw)
    if status >= 500:
        return ServerError(message, status=status, **kw)
    if status == 405:
        allow = headers.get("Allow") or ""
        methods = tuple(m.strip().upper() for m in allow.split(",") if m.strip())
        return MethodNotAllowed(message, allow=methods, **kw)
    cls = _BY_STATUS.get(status)
    if cls is not None:
        return cls(message, **kw)
    return HttpStatusError(message, status=status, **kw)
