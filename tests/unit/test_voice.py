"""The local voice check on generated clips: voiced, silent, noisy, near the threshold, resampled.

Clips are written to real files in several containers and rates and measured through the same
path preflight takes (`inspect_audio` → `worker.audio.voice`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.audiogen import samples, write_audio, write_signal
from tests.manifests import collected
from worker.audio.decode import BLOCK_SAMPLES, AudioReader
from worker.audio.inspect import inspect_audio
from worker.audio.voice import VoiceCounter, VoiceMeter, vad_rate
from worker.audio.voice_rule import LocalVoice, VoiceVerdict, voice_verdict, with_local_voice
from worker.journal.records import ErrorInfo
from worker.manifest.json import stream_json
from worker.manifest.models import ManifestDefaults
from worker.manifest.preflight import EnrollmentPreflight, preflight_enrollment

# WebRTC's VAD keeps calling a few frames speech after speech stops (its hangover): about
# 0.2 s per stretch of voice, never less than the voice there is.
HANGOVER_S = 0.25


def _voice(path: Path) -> float:
    facts = inspect_audio(path, path.parent)
    assert facts.voice is not None
    return facts.voice.of(None)


def _measured_alone(path: Path, channel: int | None) -> float:
    """The voice of `path` from a decoding pass of its own, not preflight's shared one."""
    with path.open("rb") as fh, AudioReader(fh) as reader:
        assert reader.info is not None
        meter = VoiceMeter(reader.info.sample_rate, reader.info.channels)
        for block in reader.blocks():
            meter(block)
    return meter.figures().of(channel)


@pytest.mark.parametrize(
    ("suffix", "rate"),
    [(".wav", 8000), (".wav", 16000), (".flac", 22050), (".wav", 44100), (".ogg", 16000)],
)
def test_voiced_clip_measures_its_voice(tmp_path: Path, suffix: str, rate: int) -> None:
    path = write_audio(tmp_path / f"v{suffix}", voice_s=5.0, silence_s=1.0, samplerate=rate)
    assert 5.0 - 0.1 <= _voice(path) <= 5.0 + HANGOVER_S


def test_silence_is_no_voice(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "s.wav", voice_s=0.0, silence_s=6.0, samplerate=8000)
    assert _voice(path) == 0.0


def test_faint_hiss_is_no_voice_and_voice_under_it_still_counts(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    hiss = (0.003 * rng.standard_normal(6 * 8000)).astype(np.float32)
    assert _voice(write_signal(tmp_path / "hiss.wav", hiss, 8000)) <= 0.2
    noisy = samples(4.0, 2.0, 8000) + hiss
    assert 4.0 - 0.1 <= _voice(write_signal(tmp_path / "noisy.wav", noisy, 8000)) <= 4.5


def test_a_stereo_file_is_measured_per_channel_and_mixed(tmp_path: Path) -> None:
    agent = samples(1.5, 4.5, 8000)
    customer = samples(4.8, 1.2, 8000, pitch=330.0)
    path = write_signal(tmp_path / "call.wav", np.stack([agent, customer]), 8000)
    facts = inspect_audio(path, tmp_path)
    assert facts.voice is not None
    assert 1.4 <= facts.voice.of(0) <= 1.5 + HANGOVER_S
    assert 4.7 <= facts.voice.of(1) <= 4.8 + HANGOVER_S
    assert facts.voice.of(None) >= facts.voice.of(1)  # the mix has voice where either has
    assert _measured_alone(path, 1) == facts.voice.of(1)  # one pass measures as a pass alone


def test_the_detector_runs_at_a_rate_it_takes() -> None:
    assert [vad_rate(r) for r in (8000, 11025, 16000, 22050, 44100, 48000)] == [
        8000,
        8000,
        16000,
        16000,
        16000,
        16000,
    ]
    counter = VoiceCounter(44100)
    counter.add(samples(2.0, 0.0, 44100), last=True)
    assert 1.9 <= counter.voice_s <= 2.0 + HANGOVER_S


def test_a_file_too_long_for_any_model_is_not_measured(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "long.wav", voice_s=1.0, silence_s=125.0, samplerate=8000)
    assert inspect_audio(path, tmp_path).voice is None


# --- the verdict ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("voice", "needed", "margin", "verdict"),
    [
        (4.5, 4.5, 0.15, VoiceVerdict.ENOUGH),
        (4.4999, 4.5, 0.15, VoiceVerdict.ENOUGH),  # equal at the wire's millisecond
        (4.0, 4.5, 0.15, VoiceVerdict.NEAR),
        (3.825, 4.5, 0.15, VoiceVerdict.NEAR),
        (3.82, 4.5, 0.15, VoiceVerdict.TOO_LITTLE),
        (1.0, 4.5, 0.15, VoiceVerdict.TOO_LITTLE),
        (0.0, 4.5, 1.0, VoiceVerdict.NEAR),  # margin 1: never refused locally
        (1.0, 2.25, 0.15, VoiceVerdict.TOO_LITTLE),
        (2.0, 2.25, 0.15, VoiceVerdict.NEAR),
    ],
)
def test_voice_verdict(voice: float, needed: float, margin: float, verdict: VoiceVerdict) -> None:
    assert voice_verdict(voice, needed, margin) is verdict


# --- preflight ------------------------------------------------------------------------------------


def _preflight(
    root: Path, audios: list[str], min_audios: int = 1, margin: float = 0.15
) -> EnrollmentPreflight:
    doc = {"identity": "ann", "audios": audios, "minAudios": min_audios}
    defaults = ManifestDefaults(audio_root=root, owner="demo", space="main")
    [enrollment] = collected(stream_json(json.dumps(doc), "m.json", defaults)).enrollments
    return preflight_enrollment(enrollment, root, "m.json", voice_margin=margin)


def test_preflight_refuses_a_file_clearly_below_with_the_measured_figure(tmp_path: Path) -> None:
    write_audio(tmp_path / "quiet.wav", voice_s=1.0, silence_s=5.0, samplerate=8000)
    pre = _preflight(tmp_path, ["quiet.wav"])
    [problem] = pre.problems
    assert str(problem).startswith('m.json: audios[0] "quiet.wav": voice 1.')
    assert "s (measured locally) is below the 4.50 s that phone/v1 needs per audio" in str(problem)
    assert "ENROLLER_VOICE_MARGIN" in problem.reason


def test_preflight_uploads_a_file_near_the_threshold_with_a_warning(tmp_path: Path) -> None:
    write_audio(tmp_path / "near.wav", voice_s=4.0, silence_s=1.0, samplerate=8000)
    pre = _preflight(tmp_path, ["near.wav"])
    assert pre.ok
    [voice] = pre.voice
    assert voice.verdict is VoiceVerdict.NEAR and voice.needed_s == 4.5
    [warning] = pre.warnings
    assert warning.severity == "warning"
    assert "within 15% of the 4.50 s needed: uploaded" in warning.reason


def test_the_share_per_audio_follows_min_audios(tmp_path: Path) -> None:
    write_audio(tmp_path / "a.wav", voice_s=2.5, silence_s=1.0, samplerate=8000)
    write_audio(tmp_path / "b.wav", voice_s=2.6, silence_s=1.0, samplerate=8000)
    assert not _preflight(tmp_path, ["a.wav"]).ok  # 2.5 s of 4.5 s: clearly short
    pre = _preflight(tmp_path, ["a.wav", "b.wav"], min_audios=2)  # 2.25 s each
    assert pre.ok and [v.verdict for v in pre.voice] == [VoiceVerdict.ENOUGH] * 2


def test_margin_one_never_refuses(tmp_path: Path) -> None:
    write_audio(tmp_path / "quiet.wav", voice_s=0.5, silence_s=5.0, samplerate=8000)
    assert _preflight(tmp_path, ["quiet.wav"], margin=1.0).ok


def test_a_voice_refusal_by_the_server_shows_both_figures() -> None:
    local = [LocalVoice(audio="a.wav", voice_s=4.17, needed_s=4.5, verdict=VoiceVerdict.NEAR)]
    refused = ErrorInfo(step="add_audio", status=422, reason="audio x: voice 4.02 s is below …")
    fields = with_local_voice({"error": refused}, local)
    assert fields["local_voice"] == local
    assert fields["error"].reason == (
        "audio x: voice 4.02 s is below … (voice measured locally: a.wav 4.17 s)"
    )
    other = ErrorInfo(step="compute", status=429, reason="Not enough credits")
    assert with_local_voice({"error": other}, local)["error"] == other
    assert with_local_voice({"error": refused}, []) == {"error": refused}


def test_a_file_longer_than_any_model_is_counted_to_its_end_but_not_measured(
    tmp_path: Path,
) -> None:
    """One decoding pass: the length is exact past the longest model, the voice not asked."""
    path = write_signal(tmp_path / "long.wav", samples(130.0, 0.0, 8000), 8000)
    facts = inspect_audio(path, tmp_path)
    assert facts.frames == 130 * 8000
    assert facts.complete
    assert facts.voice is None


def test_the_decoder_feeds_a_sink_until_it_has_enough(tmp_path: Path) -> None:
    path = write_signal(tmp_path / "v.wav", samples(10.0, 0.0, 8000), 8000)
    fed: list[int] = []

    def first_block_only(block: np.ndarray) -> bool:
        fed.append(block.shape[1])
        return False

    with path.open("rb") as fh, AudioReader(fh) as reader:
        probe = reader.count(sink=first_block_only)
    assert probe.frames == 10 * 8000  # counted to the end all the same
    assert len(fed) == 1 and fed[0] >= BLOCK_SAMPLES
