"""Masks for secrets in text: the mask itself, and credentials written into URLs.

Owns: the pure rules shared by `enroller config` (cli.py) and every log line (log.py). A URL's
user-info (`https://user:secret@host/v1`, `redis://:secret@host`) is a secret whatever the
setting, so it is masked in any text, not only in the settings known to hold URLs.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

MASK = "********"

# scheme://userinfo@ — the user-info runs to the last "@" before the path, query, fragment or
# whitespace, so a raw "@" inside a password (`u:p@ss@host`) is masked with the rest of it.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^\s/?#]*@")


def mask_url_userinfo(text: str) -> str:
    """`text` with the user-info of every URL in it replaced by the mask."""
    if "@" not in text:  # the common case: no URL with credentials, no regex run
        return text
    return _URL_USERINFO.sub(lambda m: m.group("scheme") + MASK + "@", text)


def url_has_userinfo(url: str) -> bool:
    """Whether `url` carries credentials (`user:password@` or `token@`) in its authority."""
    return "@" in urlsplit(url).netloc


def url_secrets(url: str) -> list[str]:
    """The secret pieces of `url`'s user-info, raw and percent-decoded, for a log redactor.

    With `user:password`, the password and the whole user-info are secrets (the user name alone
    is not: masking a common name everywhere would garble every line). A lone `token@` is one.
    """
    netloc = urlsplit(url).netloc
    if "@" not in netloc:
        return []
    userinfo = netloc.rpartition("@")[0]
    _user, colon, password = userinfo.partition(":")
    pieces = [userinfo, password] if colon else [userinfo]
    found = {p for piece in pieces for p in (piece, unquote(piece)) if p}
    return sorted(found, key=len, reverse=True)
