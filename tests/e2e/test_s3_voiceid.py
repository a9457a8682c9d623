"""Issue 29's whole path with S3: a Voice ID manifest in a bucket, its 8 kHz WAVs and a stereo
call (`ChannelId 1`) in the bucket too, `enroller submit s3://…` and the worker, against a
real S3 server (SeaweedFS) and the emulator. The customer's channel is proven by the voice the
emulator measured; voiceid.json is in Voice ID's shape; SKIP and OVERWRITE are honoured; an
object over Voice ID's 20 MiB is refused from its HEAD."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.audiogen import samples, write_audio, write_signal
from tests.e2e.test_voiceid import (
    AGENT_S,
    CUSTOMER_S,
    LENGTH_S,
    RATE,
    audio_by_alias,
    output_of,
    request,
    rows_by_request,
    voiceid_manifest,
    voiceprint,
)
from tests.emulator_harness import EmulatorHandle
from tests.s3_harness import S3Server
from tests.support import iso_seconds, make_settings, report_of, run_once
from worker.cli import main

BUCKET = "voiceid-e2e"


@pytest.fixture
def bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The recordings in S3, and the worker's AWS configuration as a user sets it."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    s3_server.bucket(BUCKET)
    local = tmp_path / "src"
    for name, voice in (("alice", 5.0), ("alice-2", 5.6)):
        path = write_audio(local / f"{name}.wav", voice_s=voice, samplerate=RATE)
        s3_server.put(BUCKET, f"vid/{name}.wav", path)
    agent = samples(AGENT_S, LENGTH_S - AGENT_S, RATE)
    customer = samples(CUSTOMER_S, LENGTH_S - CUSTOMER_S, RATE, pitch=330.0)
    call = write_signal(local / "c1.wav", np.stack([agent, customer]), RATE, "pcm_s16le")
    s3_server.put(BUCKET, "calls/c1.wav", call)
    s3_server.put(BUCKET, "calls/huge.wav", os.urandom(20 * 1024 * 1024 + 1))
    return f"s3://{BUCKET}"


def submit(s3_server: S3Server, queue: Path, name: str, document: object, *flags: str) -> None:
    s3_server.put(BUCKET, f"manifests/{name}", json.dumps(document).encode())
    where = ["--queue-dir", str(queue), "--owner", "demo", "--space", "main"]
    assert main(["submit", f"s3://{BUCKET}/manifests/{name}", *where, *flags]) == 0


async def test_a_voice_id_manifest_in_s3_of_audio_in_s3(
    s3_server: S3Server, emulator: EmulatorHandle, bucket: str, tmp_path: Path
) -> None:
    queue = tmp_path / "queue"
    (queue / "audio").mkdir(parents=True)
    url = emulator.base_url
    document = voiceid_manifest(
        request("req-1", "alice", (f"{bucket}/vid/alice.wav", 0)),
        request("req-2", "cust-2", (f"{bucket}/calls/c1.wav", 1)),
        request("req-3", "big", (f"{bucket}/calls/huge.wav", 0)),
    )
    submit(s3_server, queue, "tonight.json", document)
    assert await run_once(make_settings(queue, url)) == 1  # req-3 refused

    report = report_of(queue, "tonight")
    rows = rows_by_request(report)
    assert (rows["req-1"]["outcome"], rows["req-2"]["outcome"]) == ("enrolled", "enrolled")
    [derived] = rows["req-2"]["derived"]
    assert (derived["file"], derived["channel"]) == (f"{bucket}/calls/c1.wav", 1)
    stored = await audio_by_alias(emulator, derived["sha256"])
    assert iso_seconds(stored["voiceDuration"]) == pytest.approx(CUSTOMER_S, abs=0.1)
    output = output_of(queue, "tonight")
    assert list(output) == ["Version", "Errors", "SuccessfulEnrollments"]
    [error] = output["Errors"]
    assert (error["RequestId"], error["ErrorCode"]) == ("req-3", 400)
    assert "over the 20971520-byte limit" in error["ErrorMessage"]
    assert "nothing was downloaded" in error["ErrorMessage"]
    statuses = {e["RequestId"]: e["EnrollmentStatus"] for e in output["SuccessfulEnrollments"]}
    assert statuses == {"req-1": "NEW_ENROLLMENT", "req-2": "NEW_ENROLLMENT"}
    before = await voiceprint(emulator, "alice")

    # A new recording: SKIP (Voice ID's default) keeps alice's voiceprint; OVERWRITE replaces it.
    again = voiceid_manifest(request("r-2", "alice", (f"{bucket}/vid/alice-2.wav", 0)))
    submit(s3_server, queue, "skip.json", again)
    assert await run_once(make_settings(queue, url)) == 0
    [done] = output_of(queue, "skip")["SuccessfulEnrollments"]
    assert done["EnrollmentStatus"] == "DUPLICATE_SKIPPED"
    assert await voiceprint(emulator, "alice") == before
    submit(s3_server, queue, "over.json", again, "--existing", "overwrite")
    assert await run_once(make_settings(queue, url)) == 0
    [done] = output_of(queue, "over")["SuccessfulEnrollments"]
    assert done["EnrollmentStatus"] == "ENROLLMENT_OVERWRITE"
    assert (await voiceprint(emulator, "alice"))["id"] == done["GeneratedSpeakerId"]
    assert done["GeneratedSpeakerId"] != before["id"]
    assert not list((queue / "active").iterdir())  # every download went with its enrollment
