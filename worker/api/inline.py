"""The body of an audio created with its file inline: JSON streamed around base64 chunks.

Owns: `InlineAudioBody`, the request body `{"alias": …, "identity": …, "file": "<base64>"}`
of `POST …/audios` (api-contract.md §3), produced chunk by chunk from a `VerifiedUpload` with
an exact `Content-Length` known before the first byte. The file is never held whole, nor its
base64: each chunk read is encoded and sent (a remainder of up to 2 bytes carries over, since
base64 encodes 3 bytes at a time), and the upload's size and sha256 checks still abort the body
before it is complete if the file changed since preflight.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from worker.audio.files import AudioUnreadable, VerifiedUpload


def base64_length(size: int) -> int:
    """Characters of the padded base64 of `size` bytes."""
    return 4 * ((size + 2) // 3)


@dataclass
class InlineAudioBody:
    """`fields` (alias, identity…) plus `"file"`: the base64 of `upload`, streamed."""

    upload: VerifiedUpload
    fields: dict[str, Any]
    content_type: str = "application/json"

    def __post_init__(self) -> None:
        head = json.dumps(self.fields, ensure_ascii=True, separators=(",", ":"))
        self._prefix = (head[:-1] + ("," if self.fields else "") + '"file":"').encode()
        self._suffix = b'"}'

    @property
    def size(self) -> int:
        """The exact Content-Length."""
        return len(self._prefix) + base64_length(self.upload.size) + len(self._suffix)

    @property
    def failure(self) -> AudioUnreadable | None:
        return self.upload.failure

    def close(self) -> None:
        self.upload.close()

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self._prefix
        carry = b""
        async for chunk in self.upload.chunks():
            data = carry + chunk
            whole = len(data) - len(data) % 3
            if whole:
                yield base64.b64encode(data[:whole])
            carry = data[whole:]
        yield base64.b64encode(carry) + self._suffix
