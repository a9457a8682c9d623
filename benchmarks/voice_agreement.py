"""The worker's local voice check against the emulator's detector, on generated clips.

    .venv/bin/python benchmarks/voice_agreement.py [--json-only]

Clips of 6 s with the voice fraction swept from 0 to 100 % in steps of 5 %, at 8, 16 and
44.1 kHz (the last resampled for the VAD), two pitches (220 and 330 Hz voiced tones, as
`emulator.samples` makes voice), voice in one stretch or in four with pauses between, clean or
under faint hiss. Each clip is measured by the worker (`worker.audio.inspect.inspect_audio`, WebRTC
VAD) and by the emulator (`emulator.audio.analyze`, energy-based), and judged by the model's rule
for minAudios 1 (4.5 s per audio) and 2 (2.25 s) with the default margin. Prints one JSON object:
the figures' differences and the verdicts' agreement, the README's "Voice" figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emulator.audio import analyze
from emulator.samples import samples, write_signal
from worker.audio.inspect import inspect_audio
from worker.audio.voice_rule import MIN_TOTAL_VOICE_S, VoiceVerdict, voice_verdict
from worker.config.settings import setting_default

LENGTH_S = 6.0
RATES = (8000, 16000, 44100)
PITCHES = (220.0, 330.0)
STRETCHES = (1, 4)
HISS = (0.0, 0.003)
MIN_AUDIOS = (1, 2)


def clip(fraction: float, rate: int, pitch: float, stretches: int, hiss: float) -> np.ndarray:
    """LENGTH_S seconds with `fraction` of it voice, in `stretches` stretches spread evenly."""
    n = round(LENGTH_S * rate)
    out = np.zeros(n, dtype=np.float32)
    voice_n = round(fraction * n)
    if voice_n:
        per = voice_n // stretches
        gap = (n - voice_n) // stretches
        pos = 0
        for _ in range(stretches):
            out[pos : pos + per] = samples(per / rate, 0.0, rate, pitch)[:per]
            pos += per + gap
    if hiss:
        out += (hiss * np.random.default_rng(3).standard_normal(n)).astype(np.float32)
    return out


def measure(folder: Path) -> list[dict[str, Any]]:
    rows = []
    path = folder / "clip.wav"
    for rate in RATES:
        for pitch in PITCHES:
            for stretches in STRETCHES:
                for hiss in HISS:
                    for pct in range(0, 101, 5):
                        write_signal(path, clip(pct / 100, rate, pitch, stretches, hiss), rate)
                        facts = inspect_audio(path, folder)
                        server = analyze(path).voice_duration or 0.0
                        local = facts.voice.of(None) if facts.voice else 0.0
                        rows.append(
                            {
                                "rate": rate,
                                "pitch": pitch,
                                "stretches": stretches,
                                "hiss": hiss,
                                "voice_pct": pct,
                                "server_s": round(server, 3),
                                "local_s": round(local, 3),
                            }
                        )
    return rows


def agreement(rows: list[dict[str, Any]], min_audios: int) -> dict[str, Any]:
    needed = MIN_TOTAL_VOICE_S / min_audios
    counts = {"server_accepts": 0, "server_refuses": 0, "local_refuses": 0}
    false_refusals = caught = near_uploaded = 0
    for r in rows:
        verdict = voice_verdict(r["local_s"], needed, setting_default("voice_margin"))
        server_ok = round(r["server_s"], 3) >= round(needed, 3)
        counts["server_accepts" if server_ok else "server_refuses"] += 1
        if verdict is VoiceVerdict.TOO_LITTLE:
            counts["local_refuses"] += 1
            false_refusals += server_ok
            caught += not server_ok
        elif not server_ok:
            near_uploaded += 1
    return {
        "min_audios": min_audios,
        "needed_s": needed,
        **counts,
        "refused_locally_but_server_accepts": false_refusals,
        "server_refusals_caught_locally": caught,
        "server_refusals_uploaded_as_near_or_enough": near_uploaded,
        "caught_fraction": round(caught / counts["server_refuses"], 3)
        if counts["server_refuses"]
        else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", action="store_true", help="include every clip's figures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(Path(tmp))
    diffs = np.array([r["local_s"] - r["server_s"] for r in rows])
    result: dict[str, Any] = {
        "clips": len(rows),
        "margin": setting_default("voice_margin"),
        "local_minus_server_s": {
            "mean": round(float(diffs.mean()), 3),
            "min": round(float(diffs.min()), 3),
            "max": round(float(diffs.max()), 3),
            "mean_abs": round(float(np.abs(diffs).mean()), 3),
        },
        "per_stretch_of_voice_s": {
            str(s): round(
                float(
                    np.mean(
                        [
                            r["local_s"] - r["server_s"]
                            for r in rows
                            if r["stretches"] == s and 0 < r["voice_pct"] < 100
                        ]
                    )
                )
                / s,
                3,
            )
            for s in STRETCHES
        },
        "verdicts": [agreement(rows, n) for n in MIN_AUDIOS],
    }
    if args.rows:
        result["rows"] = rows
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
