"""The test audio generator produces what the tests assume."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

from tests.audiogen import write_audio


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg"])
def test_generated_audio_has_requested_length_and_rate(tmp_path: Path, suffix: str) -> None:
    path = write_audio(tmp_path / f"a{suffix}", voice_s=2.0, silence_s=1.0, samplerate=8000)
    info = sf.info(path)
    assert info.samplerate == 8000
    assert info.duration == pytest.approx(3.0, abs=0.05)
