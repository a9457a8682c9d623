"""Test audio made on the fly (see `emulator.samples`); no binary audio is committed."""

from __future__ import annotations

from pathlib import Path

from emulator.samples import FORMATS, samples, write_audio, write_signal

__all__ = ["FORMATS", "samples", "write_audio", "write_garbage", "write_signal"]


def write_garbage(path: Path, size: int = 4096) -> Path:
    """A file with an audio suffix that no decoder accepts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not audio at all " * (size // 17 + 1))
    return path
