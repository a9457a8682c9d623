"""Issue 11, point 4: the bytes uploaded are the bytes that were hashed. A file changed, swapped
for a FIFO or replaced by a symlink after preflight is never sent whole, against the emulator."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.audiogen import write_audio
from tests.e2e.test_client import OWNER, SPACE, client_for
from tests.emulator_harness import EmulatorHandle
from worker.api.schemas import AudioState
from worker.audio.files import AudioChanged, AudioUnreadable, VerifiedUpload


def _measured(path: Path) -> VerifiedUpload:
    return VerifiedUpload.from_path(path)


async def test_the_hashed_file_uploads_and_is_available(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    wav = write_audio(tmp_path / "a.wav", voice_s=5.0, samplerate=8000)
    source = _measured(wav)
    async with client_for(emulator.base_url) as api:
        audio = await api.create_audio(OWNER, SPACE, alias=f"sha256:{source.sha256}")
        uploaded = await api.upload_audio_file(OWNER, SPACE, audio.handle, source)
    assert uploaded.state == AudioState.AVAILABLE


@pytest.mark.parametrize("change", ["rewritten", "grown", "shrunk"])
async def test_a_file_changed_after_preflight_is_never_uploaded_whole(
    emulator: EmulatorHandle, tmp_path: Path, change: str
) -> None:
    wav = write_audio(tmp_path / "a.wav", voice_s=5.0, samplerate=8000)
    source = _measured(wav)
    data = wav.read_bytes()
    other = {
        "rewritten": data[:-1] + bytes([data[-1] ^ 1]),
        "grown": data + b"\0" * 10,
        "shrunk": data[:-10],
    }[change]
    wav.write_bytes(other)
    async with client_for(emulator.base_url) as api:
        audio = await api.create_audio(OWNER, SPACE, alias=f"sha256:{source.sha256}")
        with pytest.raises(AudioChanged, match="since preflight"):
            await api.upload_audio_file(OWNER, SPACE, audio.handle, source)
        after = await api.get_audio(OWNER, SPACE, audio.handle)
    assert after.state == AudioState.AVAITING_FILE  # the server never got a complete body


@pytest.mark.parametrize("swap", ["fifo", "symlink", "directory"])
async def test_a_file_swapped_after_preflight_fails_without_hanging(
    emulator: EmulatorHandle, tmp_path: Path, swap: str
) -> None:
    wav = write_audio(tmp_path / "a.wav", voice_s=5.0, samplerate=8000)
    source = _measured(wav)
    decoy = write_audio(tmp_path / "decoy.wav", voice_s=5.0, samplerate=8000)
    wav.unlink()
    if swap == "fifo":
        os.mkfifo(wav)
    elif swap == "symlink":
        os.symlink(decoy, wav)  # another file's bytes must never be sent in its place
    else:
        wav.mkdir()
    async with client_for(emulator.base_url) as api:
        audio = await api.create_audio(OWNER, SPACE, alias=f"sha256:{source.sha256}")
        with pytest.raises(AudioUnreadable, match=r"not a regular file|directory"):
            await api.upload_audio_file(OWNER, SPACE, audio.handle, source)
        after = await api.get_audio(OWNER, SPACE, audio.handle)
    assert after.state == AudioState.AVAITING_FILE
