"""One decoder for preflight and emulator: every accepted format, the rejected ones, the files
that trip libsndfile, and the decoder's bounds. Real files encoded in tmp_path, never committed.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emulator.audio import analyze
from tests.audiocheck import preflight_audio
from tests.audiogen import samples, write_audio, write_signal
from tests.flaccraft import write_flac_ints, write_peak_beyond_range
from worker.audio.decode import AudioReader, DecodeError
from worker.audio.formats import ACCEPTED, ACCEPTED_TEXT, container_name, format_problem
from worker.audio.inspect import CONVERT_HINT, inspect_audio

VOICE_S, SILENCE_S = 5.0, 1.0
RATES = (8000, 16000)


def _stereo(rate: int) -> np.ndarray:
    return np.stack([samples(VOICE_S, SILENCE_S, rate), samples(VOICE_S, SILENCE_S, rate, 330.0)])


# (file name, codec or None for the suffix's default, stereo?, expected container and codec)
ACCEPTED_CASES = [
    ("pcm16.wav", None, False, "wav", "pcm_s16le"),
    ("pcm24.wav", "pcm_s24le", False, "wav", "pcm_s24le"),
    ("pcm32.wav", "pcm_s32le", False, "wav", "pcm_s32le"),
    ("float.wav", "pcm_f32le", False, "wav", "pcm_f32le"),
    ("ulaw.wav", "pcm_mulaw", False, "wav", "pcm_mulaw"),
    ("alaw.wav", "pcm_alaw", False, "wav", "pcm_alaw"),
    ("a.flac", None, False, "flac", "flac"),
    ("opus.ogg", None, False, "ogg", "opus"),
    ("vorbis.ogg", "vorbis", True, "ogg", "vorbis"),  # FFmpeg's Vorbis encoder: stereo only
    ("a.webm", None, False, "webm", "opus"),
]


def test_every_accepted_pair_has_a_case() -> None:
    covered = {(c, k) for *_, c, k in ACCEPTED_CASES}
    listed = {(c, k) for c, codecs in ACCEPTED.items() for k in codecs}
    assert listed - covered == {("wav", "pcm_f64le")}  # double float: same path as pcm_f32le


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize(("name", "codec", "stereo", "container", "codec_name"), ACCEPTED_CASES)
def test_accepted_formats_pass_preflight_and_the_emulator_measures_them(
    tmp_path: Path, rate: int, name: str, codec: str | None, stereo: bool, container: str,
    codec_name: str,
) -> None:  # fmt: skip
    path = tmp_path / name
    if stereo:
        write_signal(path, _stereo(rate), rate, codec)
    else:
        write_audio(path, VOICE_S, SILENCE_S, rate, codec)
    check = preflight_audio(path, tmp_path, "phone/v1")
    assert check.ok, check.errors
    facts = check.facts
    assert facts is not None
    decoded_rate = 48000 if codec_name == "opus" else rate  # Opus always decodes at 48 kHz
    assert (facts.format, facts.codec, facts.samplerate) == (container, codec_name, decoded_rate)
    assert facts.channels == (2 if stereo else 1)
    assert facts.duration == pytest.approx(VOICE_S + SILENCE_S, abs=0.1)
    assert facts.complete
    found = analyze(path)
    assert found.decodable and found.format == container and found.sample_rate == decoded_rate
    assert found.duration == pytest.approx(facts.duration, abs=1e-6)  # one decoder, one length
    assert found.voice_duration == pytest.approx(VOICE_S, abs=0.1)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize(("name", "shown"), [("call.mp3", "mp3"), ("call.m4a", "m4a (aac)")])
def test_decodable_formats_the_api_refuses_are_rejected_by_both(
    tmp_path: Path, rate: int, name: str, shown: str
) -> None:
    path = write_audio(tmp_path / name, VOICE_S, SILENCE_S, rate)
    check = preflight_audio(path, tmp_path, "phone/v1")
    assert check.errors == (
        f"format {shown} is not accepted by the API (accepted: {ACCEPTED_TEXT}); {CONVERT_HINT}",
    )
    assert check.facts is not None and check.facts.duration > VOICE_S  # it did decode
    assert not analyze(path).decodable  # → notAvailable on the server: never worth a credit


def test_format_names_and_the_rejection_sentence() -> None:
    assert container_name("mov,mp4,m4a,3gp,3g2,mj2") == "m4a"
    assert container_name("matroska,webm") == "matroska"
    assert container_name("matroska,webm", webm_doctype=True) == "webm"
    assert format_problem("webm", "opus") is None and format_problem("wav", "pcm_alaw") is None
    assert format_problem("matroska", "opus") == (
        f"format matroska (opus) is not accepted by the API (accepted: {ACCEPTED_TEXT})"
    )
    assert format_problem("webm", "vorbis") is not None  # the contract says WebM (Opus)
    assert "G.711" in ACCEPTED_TEXT and "WebM (Opus)" in ACCEPTED_TEXT


# --- the vendor's property: a sample beyond the bit depth ----------------------------------------


@pytest.mark.parametrize("rate", RATES)
def test_flac_with_a_peak_beyond_16_bits_trips_libsndfile_but_decodes_on_both_sides(
    tmp_path: Path, rate: int
) -> None:
    signal = samples(VOICE_S, SILENCE_S, rate)
    path, where = write_peak_beyond_range(tmp_path / "peak.flac", signal, rate)
    control = write_flac_ints(
        tmp_path / "control.flac", np.round(signal / np.abs(signal).max() * 32767), rate
    )
    # The crafted stream is valid FLAC apart from that one sample: libsndfile reads the control
    # and fails on the peak exactly as on the vendor's files (libFLAC >= 1.4's range check).
    assert sf.read(control, dtype="int16")[0].shape == (signal.size,)
    with pytest.raises(RuntimeError, match=r"flac decoder|psf_fseek"):
        sf.read(path, dtype="int16")
    # FFmpeg decodes it; the +32768 comes out as its 16-bit wrap, proving it is in the stream.
    with path.open("rb") as fh, AudioReader(fh) as reader:
        decoded = np.concatenate([b[0] for b in reader.blocks()])
    assert decoded.size == signal.size and decoded[where] == -1.0
    check = preflight_audio(path, tmp_path, "phone/v1")
    assert check.ok and check.facts is not None
    assert check.facts.frames == signal.size
    found = analyze(path)
    assert found.decodable and found.duration == pytest.approx(VOICE_S + SILENCE_S)
    assert found.voice_duration == pytest.approx(VOICE_S, abs=0.1)


# --- bounds and failures -----------------------------------------------------------------------


def test_the_time_bound_stops_a_decode(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "a.flac", 3.0, 0.0, 8000)
    with (
        path.open("rb") as fh,
        pytest.raises(DecodeError, match=r"took longer than -1 s"),
        AudioReader(fh, time_limit_s=-1.0) as reader,
    ):
        reader.count()


def test_decoding_stops_past_the_limit_and_says_so(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "long.wav", 200.0, 0.0, 8000)
    with path.open("rb") as fh, AudioReader(fh) as reader:
        partial = reader.count(stop_after_s=10.0)
    assert not partial.complete and 10.0 < partial.duration < 11.0
    [reason] = preflight_audio(path, tmp_path, "phone/v1", decode_limit_s=130.0).errors
    assert reason.startswith("130.") and reason.endswith(
        " s or more is longer than the 120 s maximum of phone/v1"
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not audio at all " * 300, "cannot be decoded as audio (FFmpeg: Invalid data"),
        # A playlist naming another file: no such demuxer runs, no other file is ever opened.
        (b"#EXTM3U\n#EXTINF:5,\nother.wav\n", "cannot be decoded as audio (FFmpeg: Invalid data"),
        (b"ffconcat version 1.0\nfile other.wav\n", "cannot be decoded as audio (FFmpeg: Invalid"),
    ],
)
def test_what_is_not_audio_is_a_reason_not_a_crash(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    write_audio(tmp_path / "other.wav", 5.0)
    path = tmp_path / "x.wav"
    path.write_bytes(content)
    [problem] = preflight_audio(path, tmp_path, "phone/v1").errors
    assert problem.startswith(reason)
    assert not analyze(path).decodable


def test_the_caller_owns_the_file_object(tmp_path: Path) -> None:
    data = write_audio(tmp_path / "a.flac", 2.0, 0.0, 8000).read_bytes()
    fh = io.BytesIO(data)
    with AudioReader(fh) as reader:
        assert reader.count().frames == 16000
    assert not fh.closed  # closed by whoever opened it (the worker's safe open)


@pytest.mark.parametrize(
    ("make", "channels"),
    [
        (lambda p: write_audio(p, 4.0, 0.0, 8000), 1),
        (lambda p: write_signal(p, np.zeros((2, 8000), dtype=np.float32), 8000), 2),
    ],
)
def test_inspect_reports_channels_and_codec(
    tmp_path: Path, make: Callable[[Path], object], channels: int
) -> None:
    path = tmp_path / "a.wav"
    make(path)
    facts = inspect_audio(path, tmp_path)
    assert (facts.format, facts.codec, facts.channels) == ("wav", "pcm_s16le", channels)
