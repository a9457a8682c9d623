"""The inline audio body: JSON around base64 streamed from the file, exact and never whole."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from worker.api.inline import InlineAudioBody, base64_length
from worker.audio.files import AudioChanged, VerifiedUpload


def upload_of(path: Path, data: bytes, chunk: int) -> VerifiedUpload:
    path.write_bytes(data)
    return VerifiedUpload(path, len(data), hashlib.sha256(data).hexdigest(), chunk_bytes=chunk)


async def body_of(inline: InlineAudioBody) -> tuple[bytes, list[bytes]]:
    parts = [part async for part in inline.chunks()]
    return b"".join(parts), parts


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 1000, 3 * 7 + 1])
@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64])
async def test_the_body_is_the_json_the_api_takes_with_an_exact_length(
    tmp_path: Path, size: int, chunk: int
) -> None:
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    inline = InlineAudioBody(upload_of(tmp_path / "a.wav", data, chunk), {"alias": "sha256:x"})
    body, parts = await body_of(inline)
    assert len(body) == inline.size  # Content-Length is known before the first byte
    document = json.loads(body)
    assert document == {"alias": "sha256:x", "file": base64.b64encode(data).decode()}
    assert all(len(p) <= 4 * (chunk + 2) // 3 + 64 for p in parts)  # streamed, never whole


def test_base64_length() -> None:
    assert [base64_length(n) for n in (0, 1, 2, 3, 4, 6, 7)] == [0, 4, 4, 4, 8, 8, 12]


async def test_a_file_changed_since_preflight_aborts_before_the_body_is_complete(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.wav"
    upload = upload_of(path, b"x" * 300, 64)
    path.write_bytes(b"y" * 300)  # same size, other bytes
    inline = InlineAudioBody(upload, {})
    sent: list[bytes] = []
    with pytest.raises(AudioChanged, match="sha256 differs"):
        async for part in inline.chunks():
            sent.append(part)
    assert not b"".join(sent).endswith(b'"}')  # the closing never went out
    assert inline.failure is not None
