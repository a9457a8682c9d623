"""The test audio generator produces what the tests assume."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.audiogen import FORMATS, write_audio
from worker.audio.decode import AudioReader


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_generated_audio_has_requested_length_and_rate(tmp_path: Path, suffix: str) -> None:
    path = write_audio(tmp_path / f"a{suffix}", voice_s=2.0, silence_s=1.0, samplerate=8000)
    with path.open("rb") as fh, AudioReader(fh) as reader:
        info = reader.count()
    assert info.sample_rate == (48000 if info.codec == "opus" else 8000)  # Opus decodes at 48k
    assert info.channels == 1
    # AAC keeps its encoder's priming and padding (up to two 1024-sample frames) in the decode.
    assert info.duration == pytest.approx(3.0, abs=0.3 if info.codec == "aac" else 0.05)
