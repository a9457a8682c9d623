"""One audio file checked on its own, outside any manifest: what the worker's preflight does
per file (`inspect_audio`, then `requirement_problems`), gathered for tests and benchmarks.

The worker itself preflights whole enrollments (`worker.manifest.preflight`); these two
calls are what it runs for each of their files.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from worker.audio.files import AudioUnreadable
from worker.audio.inspect import DECODE_LIMIT_S, AudioFacts, inspect_audio, requirement_problems


class AudioCheck(BaseModel):
    """The result of preflighting one file: facts when it could be read, and every problem.

    `errors` are reasons without the file name; `str()` prefixes the name.
    """

    model_config = ConfigDict(frozen=True)

    name: str  # how the file is shown to a person, usually relative to the audio root
    facts: AudioFacts | None = None
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.facts is not None and not self.errors

    def __str__(self) -> str:
        if self.ok:
            return f"{self.name}: ok"
        return "; ".join(f"{self.name}: {e}" for e in self.errors)


def preflight_audio(
    path: Path,
    audio_root: Path,
    model: str,
    min_audios: int = 1,
    name: str | None = None,
    *,
    decode_limit_s: float = DECODE_LIMIT_S,
) -> AudioCheck:
    """Check one file completely: readable, inside the root, decodes, fits `model`.

    Never raises for a bad file; every problem is in the returned `AudioCheck.errors`.
    """
    shown = name if name is not None else str(path)
    try:
        facts = inspect_audio(path, audio_root, decode_limit_s=decode_limit_s)
    except AudioUnreadable as exc:
        return AudioCheck(name=shown, errors=(str(exc),))
    errors = requirement_problems(facts, model, min_audios)
    return AudioCheck(name=shown, facts=facts, errors=tuple(errors))
