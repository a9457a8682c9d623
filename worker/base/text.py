"""Text that can always be written: the one rule for user-supplied strings in files and logs.

Owns: what happens to a string that is not valid Unicode. Python strings can hold lone
surrogates (a `\\ud800` escape in a JSON manifest, a file name that is not UTF-8, decoded with
`surrogateescape`), which UTF-8 cannot encode and pydantic cannot serialise. Every report,
journal record, error file and CSV the worker writes passes user text through here, so such a
string becomes its visible escape (`\\ud800`) instead of an exception that stops a job.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator


def has_lone_surrogate(text: str) -> bool:
    """Whether `text` holds a code point UTF-8 cannot encode (U+D800–U+DFFF)."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def safe_text(text: str) -> str:
    """`text` itself, or with each lone surrogate written as its `\\udXXX` escape."""
    if not has_lone_surrogate(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def encode_text(text: str) -> bytes:
    """UTF-8 for any `str`: lone surrogates become `\\udXXX` escapes instead of raising."""
    return text.encode("utf-8", "backslashreplace")


def _safe_any(value: object) -> object:
    return safe_text(value) if isinstance(value, str) else value


# A str field of a model that is written out (journal, reports, error files): always encodable.
SafeStr = Annotated[str, BeforeValidator(_safe_any)]
