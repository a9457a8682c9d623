"""The local voice check end to end: the demo's mostly-silence.wav never reaches the API.

The emulator's request log is the proof: nothing was created or uploaded for that row, and the
requests it counted are exactly those of the one good row (worker.enrollment.requests).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from emulator.demo import MISTAKES_CSV, SAMPLE_AUDIO
from tests.audiogen import write_audio
from tests.emulator_harness import EmulatorHandle
from tests.support import drop, make_settings, report_of, run_once
from worker.config.settings import setting_default
from worker.enrollment.requests import (
    WORKER_START_REQUESTS,
    enrollment_requests,
    usage_check_requests,
)

SPACE = "/spaces/acme/onboarding"


async def test_demo_mostly_silence_is_refused_locally_with_no_upload(
    tmp_path: Path, emulator: EmulatorHandle
) -> None:
    queue = tmp_path / "queue"
    for name, voice, silence, rate in SAMPLE_AUDIO:
        write_audio(queue / "audio" / name, voice_s=voice, silence_s=silence, samplerate=rate)
    silent = queue / "audio" / "cust-0008" / "mostly-silence.wav"
    good = queue / "audio" / "cust-0006" / "call-1.wav"
    drop(queue, "with-mistakes.csv", MISTAKES_CSV)

    assert await run_once(make_settings(queue, emulator.base_url)) == 1

    rows = {r["identity"]: r for r in report_of(queue, "with-mistakes")["enrollments"]}
    assert rows["cust-0006"]["outcome"] == "enrolled"
    refused = rows["cust-0008"]
    assert refused["outcome"] == "failed" and refused["error"]["step"] == "preflight"
    reason = refused["error"]["reason"]
    assert reason.startswith('audio "cust-0008/mostly-silence.wav": voice 1.')
    assert "(measured locally) is below the 4.50 s that phone/v1 needs" in reason

    stats = await emulator.stats()
    async with emulator.client() as api:
        sha = hashlib.sha256(silent.read_bytes()).hexdigest()
        listing = await api.get(f"{SPACE}/audios", params={"search": f"sha256:{sha}"})
        assert listing.status == 200 and listing.body == []
        assert (await api.get(f"{SPACE}/identities/cust-0008")).status == 404
    # Exactly the good row's requests: the refused one cost none, and no byte of it was sent.
    expected = enrollment_requests(
        [good.stat().st_size], setting_default("inline_upload_max_bytes")
    ) + usage_check_requests(1)
    assert stats["requests"]["total"] == expected + WORKER_START_REQUESTS
    assert stats["uploads"]["bytes_received"] == good.stat().st_size
    assert stats["created"]["identities"] == 1
