"""Real call-recording formats through the emulator and the worker, over real sockets.

The files are encoded in tmp_path by FFmpeg (PyAV), plus crafted FLAC with a sample beyond its
bit depth (the property of the vendor's example recordings that trips libsndfile).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.audiogen import samples, write_audio, write_signal
from tests.emulator_harness import EmulatorHandle
from tests.flaccraft import write_peak_beyond_range
from tests.support import drop, iso_seconds, make_settings, report_of, run_once
from worker.audio.formats import ACCEPTED_TEXT
from worker.audio.inspect import CONVERT_HINT

SPACE = "/spaces/demo/main"
OCTET = {"Content-Type": "application/octet-stream"}


def _make(path: Path, rate: int, codec: str | None = None) -> Path:
    if path.name.startswith("peak"):
        return write_peak_beyond_range(path, samples(5.0, 1.0, rate), rate)[0]
    if codec == "vorbis":
        both = samples(5.0, 1.0, rate)
        return write_signal(path, np.stack([both, both]), rate, codec)
    return write_audio(path, 5.0, 1.0, rate, codec)


@pytest.mark.parametrize(
    ("name", "rate", "codec", "state", "measured_rate"),
    [
        ("ulaw.wav", 8000, "pcm_mulaw", "available", 8000),
        ("alaw.wav", 8000, "pcm_alaw", "available", 8000),
        ("pcm24.wav", 16000, "pcm_s24le", "available", 16000),
        ("float.wav", 16000, "pcm_f32le", "available", 16000),
        ("peak8.flac", 8000, None, "available", 8000),
        ("peak16.flac", 16000, None, "available", 16000),
        ("opus.ogg", 16000, None, "available", 48000),
        ("vorbis.ogg", 8000, "vorbis", "available", 8000),
        ("call.webm", 8000, None, "available", 48000),
        ("call.mp3", 8000, None, "notAvailable", None),
        ("call.m4a", 16000, None, "notAvailable", None),
    ],
)
async def test_the_emulator_decodes_what_the_contract_accepts(
    emulator: EmulatorHandle,
    tmp_path: Path,
    name: str,
    rate: int,
    codec: str | None,
    state: str,
    measured_rate: int | None,
) -> None:
    data = _make(tmp_path / name, rate, codec).read_bytes()
    async with emulator.client() as api:
        created = await api.post(f"{SPACE}/audios", json={})
        reply = await api.post(
            f"{SPACE}/audios/{created.body['handle']}/file", data=data, headers=OCTET
        )
    assert reply.status == 200, reply.body
    assert reply.body["state"] == state
    assert reply.body["sampleRate"] == measured_rate
    if state == "available":
        assert iso_seconds(reply.body["duration"]) == pytest.approx(6.0, abs=0.1)
        assert iso_seconds(reply.body["voiceDuration"]) == pytest.approx(5.0, abs=0.1)


async def test_the_worker_enrolls_telephony_and_vendor_like_files_and_refuses_mp3(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    queue = tmp_path / "queue"
    files = {
        "ulaw": _make(queue / "audio" / "ulaw.wav", 8000, "pcm_mulaw"),
        "alaw": _make(queue / "audio" / "alaw.wav", 8000, "pcm_alaw"),
        "peak": _make(queue / "audio" / "peak.flac", 16000),
        "webm": _make(queue / "audio" / "call.webm", 16000),
        "mp3": _make(queue / "audio" / "call.mp3", 8000),
    }
    drop(
        queue,
        "calls.json",
        {
            "model": "phone/v1",
            "enrollments": [
                {"identity": f"cust-{key}", "audios": [path.name]} for key, path in files.items()
            ],
        },
    )
    assert await run_once(make_settings(queue, emulator.base_url)) == 1  # one failed row

    report = report_of(queue, "calls")
    by_id = {r["identity"]: r for r in report["enrollments"]}
    assert {i for i, r in by_id.items() if r["outcome"] == "enrolled"} == {
        "cust-ulaw", "cust-alaw", "cust-peak", "cust-webm",
    }  # fmt: skip
    refused = by_id["cust-mp3"]
    assert refused["error"]["step"] == "preflight"
    assert (
        f"format mp3 is not accepted by the API (accepted: {ACCEPTED_TEXT}); {CONVERT_HINT}"
        in refused["error"]["reason"]
    )
    stats = await emulator.stats()
    assert stats["uploads"]["accepted"] == 4  # the MP3 never left the machine
