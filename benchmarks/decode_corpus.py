"""Decode a folder of recordings the three ways that matter; prints one line per file and a total.

    .venv/bin/python benchmarks/decode_corpus.py DIR [--model phone/v1] [--min-audios N] [--json]

For each audio file in DIR (not recursive): the worker's preflight (`worker.audio.inspect`, FFmpeg
via PyAV), the emulator's analysis (`emulator.audio`, the same decoder) and, when the `soundfile`
test dependency is installed, a plain `soundfile.read` (libsndfile), which is what the worker
used before and what fails on FLAC frames that leave their bit depth. Nothing is uploaded and
nothing is written; the files are only read. Used for the vendor's example recordings, which
are measured, never committed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emulator.audio import analyze
from tests.audiocheck import preflight_audio


def _libsndfile(path: Path) -> str:
    try:
        import soundfile as sf
    except ImportError:
        return "not installed"
    try:
        data, _ = sf.read(path, dtype="int16")
    except Exception as exc:  # libsndfile's error, as a person would see it
        return f"fails: {exc}"
    return f"ok ({len(data)} frames)"


def measure(path: Path, model: str, min_audios: int = 1) -> dict[str, Any]:
    check = preflight_audio(path, path.parent, model, min_audios, name=path.name)
    facts = check.facts
    found = analyze(path)
    return {
        "file": path.name,
        "preflight": "ok" if check.ok else "; ".join(check.errors),
        "format": f"{facts.format}/{facts.codec}" if facts else None,
        "rate": facts.samplerate if facts else None,
        "channels": facts.channels if facts else None,
        "duration_s": round(facts.duration, 3) if facts else None,
        "emulator": "available" if found.decodable else "notAvailable",
        "voice_s": round(found.voice_duration, 3) if found.voice_duration is not None else None,
        "libsndfile": _libsndfile(path),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--model", default="phone/v1")
    parser.add_argument("--min-audios", type=int, default=1, help="as in the manifest")
    parser.add_argument("--json", action="store_true", help="one JSON document instead of lines")
    args = parser.parse_args()
    rows = [
        measure(p, args.model, args.min_audios) for p in sorted(args.dir.iterdir()) if p.is_file()
    ]
    summary = {
        "files": len(rows),
        "preflight_ok": sum(r["preflight"] == "ok" for r in rows),
        "emulator_available": sum(r["emulator"] == "available" for r in rows),
        "libsndfile_fails": sum(r["libsndfile"].startswith("fails") for r in rows),
    }
    if args.json:
        print(json.dumps({"rows": rows, "summary": summary}, indent=2))
        return 0
    for r in rows:
        print(
            f"{r['file']}: preflight {r['preflight']}; {r['format']} {r['rate']} Hz "
            f"{r['channels']} ch {r['duration_s']} s; emulator {r['emulator']} "
            f"(voice {r['voice_s']} s); libsndfile {r['libsndfile']}"
        )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
