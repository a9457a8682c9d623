"""Amazon Connect Voice ID manifests, end to end (issue 29, points 1 and 2): a Voice ID manifest
of local 8 kHz WAVs (`S3Uri` a path in the audio root) and a stereo call with `ChannelId 1`,
run by the worker against the emulator over real sockets; the reports keyed by RequestId, the
Voice ID output file in their shape, SKIP and OVERWRITE honoured. The server is read through
the API: the stored audio of the call proves which channel was enrolled."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.audiogen import samples, write_audio, write_signal
from tests.emulator_harness import EmulatorHandle
from tests.support import drop, iso_seconds, make_settings, report_of, run_once
from worker.cli import main
from worker.manifest.json import stream_json
from worker.manifest.models import Enrollment, ManifestDefaults
from worker.manifest.voiceid import speaker_handle

RATE = 8000
AGENT_S, CUSTOMER_S, LENGTH_S = 1.5, 4.8, 6.0
SPACE = "/spaces/demo/main"


def request(rid: str, speaker: str, *audios: tuple[str, int]) -> dict[str, Any]:
    specs = [{"S3Uri": uri, "ChannelId": ch} for uri, ch in audios]
    return {"RequestId": rid, "SpeakerId": speaker, "AudioSpecifications": specs}


def voiceid_manifest(*requests: dict[str, Any], action: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"Version": "1.0", "SpeakerEnrollmentRequests": list(requests)}
    if action is not None:
        doc["EnrollmentConfig"] = {"ExistingEnrollmentAction": action}
    return doc


def output_of(queue: Path, stem: str) -> dict[str, Any]:
    [path] = (queue / "reports").glob(f"{stem}-*.voiceid.json")
    return json.loads(path.read_text())


def rows_by_request(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["request_id"]: r for r in report["enrollments"]}


async def audio_by_alias(emulator: EmulatorHandle, sha: str) -> dict[str, Any]:
    async with emulator.client() as api:
        listing = await api.get(f"{SPACE}/audios", params={"search": f"sha256:{sha}"})
    [audio] = [a for a in listing.body if a["alias"] == f"sha256:{sha}"]
    return audio


async def voiceprint(emulator: EmulatorHandle, identity: str) -> dict[str, Any]:
    async with emulator.client() as api:
        answer = await api.get(f"{SPACE}/voiceprints/{identity}/main")
    return answer.body


@pytest.fixture
def queue(tmp_path: Path) -> Path:
    """8 kHz recordings in the audio root, and a stereo call: the agent says little on
    channel 0 (220 Hz), the customer a lot on channel 1 (330 Hz)."""
    root = tmp_path / "queue"
    for name, voice in (("alice", 5.0), ("bob", 5.2), ("alice-2", 5.6)):
        write_audio(root / "audio" / "vid" / f"{name}.wav", voice_s=voice, samplerate=RATE)
    agent = samples(AGENT_S, LENGTH_S - AGENT_S, RATE)
    customer = samples(CUSTOMER_S, LENGTH_S - CUSTOMER_S, RATE, pitch=330.0)
    write_signal(
        root / "audio" / "calls" / "c1.wav", np.stack([agent, customer]), RATE, "pcm_s16le"
    )
    return root


async def test_a_voice_id_manifest_runs_as_it_is(emulator: EmulatorHandle, queue: Path) -> None:
    drop(
        queue,
        "voiceid.json",
        voiceid_manifest(
            request("req-1", "alice", ("vid/alice.wav", 0)),
            request("req-2", "Bob Smith +1 555 0100", ("vid/bob.wav", 0)),
            request("req-3", "cust-3", ("calls/c1.wav", 1)),
            request("req-4", "dave", ("vid/missing.wav", 0)),
        ),
    )
    assert await run_once(make_settings(queue, emulator.base_url)) == 1  # req-4 failed

    report = report_of(queue, "voiceid")
    assert report["voiceid_status"] == "COMPLETED_WITH_ERRORS"
    rows = rows_by_request(report)
    assert {k: r["outcome"] for k, r in rows.items()} == {
        "req-1": "enrolled",
        "req-2": "enrolled",
        "req-3": "enrolled",
        "req-4": "failed",
    }
    # The SpeakerId that is no handle is enrolled under its derived one; the row gives both.
    bob = rows["req-2"]
    assert bob["identity"] == speaker_handle("Bob Smith +1 555 0100")
    assert bob["identity"].startswith("vid-") and "555" not in bob["identity"]
    assert bob["speaker_id"] == "Bob Smith +1 555 0100"
    assert (await voiceprint(emulator, bob["identity"]))["state"] == "computed"
    # The call: channel 1 alone reached the server (its voice is the customer's 4.8 s).
    [derived] = rows["req-3"]["derived"]
    assert (derived["file"], derived["channel"]) == ("calls/c1.wav", 1)
    stored = await audio_by_alias(emulator, derived["sha256"])
    assert stored["sampleRate"] == RATE
    assert iso_seconds(stored["voiceDuration"]) == pytest.approx(CUSTOMER_S, abs=0.1)

    output = output_of(queue, "voiceid")
    assert list(output) == ["Version", "Errors", "SuccessfulEnrollments"]
    assert output["Version"] == "1.0"
    [error] = output["Errors"]
    assert error["RequestId"] == "req-4" and error["ErrorCode"] == 400
    assert "vid/missing.wav" in error["ErrorMessage"]
    # In the order the requests ended (the journal's), as Voice ID's output has no order.
    done = sorted(output["SuccessfulEnrollments"], key=lambda e: e["RequestId"])
    assert done == [
        {
            "RequestId": rid,
            "GeneratedSpeakerId": rows[rid]["voiceprint_id"],
            "CustomerSpeakerId": speaker,
            "EnrollmentStatus": "NEW_ENROLLMENT",
        }
        for rid, speaker in (
            ("req-1", "alice"),
            ("req-2", "Bob Smith +1 555 0100"),
            ("req-3", "cust-3"),
        )
    ]
    assert all(e["GeneratedSpeakerId"] for e in output["SuccessfulEnrollments"])

    # The failures CSV and the retry manifest speak of requests too.
    [failures] = (queue / "reports").glob("voiceid-*.failures.csv")
    [line] = list(csv.DictReader(failures.read_text(encoding="utf-8-sig").splitlines()))
    assert (line["RequestId"], line["SpeakerId"], line["error_step"]) == (
        "req-4",
        "dave",
        "preflight",
    )
    [retry] = (queue / "reports").glob("voiceid-*.retry.json")
    again = stream_json(
        retry.read_text(),
        "retry.json",
        ManifestDefaults(audio_root=queue / "audio", owner="demo", space="main"),
    )
    assert again.kind == "voiceid" and not again.file_problems
    [item] = list(again.items())
    assert isinstance(item, Enrollment)
    assert (item.request_id, item.speaker_id, item.audio_names) == (
        "req-4",
        "dave",
        ("vid/missing.wav",),
    )


async def test_skip_and_overwrite_are_honoured(emulator: EmulatorHandle, queue: Path) -> None:
    url = emulator.base_url
    drop(queue, "first.json", voiceid_manifest(request("r1", "alice", ("vid/alice.wav", 0))))
    assert await run_once(make_settings(queue, url)) == 0
    before = await voiceprint(emulator, "alice")

    # The same request again: nothing to do, DUPLICATE_SKIPPED.
    drop(queue, "same.json", voiceid_manifest(request("r1b", "alice", ("vid/alice.wav", 0))))
    # A new recording, no EnrollmentConfig: Voice ID's default, SKIP, even though
    # ENROLLER_EXISTING is conflict (Voice ID has no such action).
    drop(queue, "skip.json", voiceid_manifest(request("r2", "alice", ("vid/alice-2.wav", 0))))
    assert await run_once(make_settings(queue, url)) == 0
    for stem, outcome in (("same", "unchanged"), ("skip", "kept")):
        assert [r["outcome"] for r in report_of(queue, stem)["enrollments"]] == [outcome]
        [done] = output_of(queue, stem)["SuccessfulEnrollments"]
        assert done["EnrollmentStatus"] == "DUPLICATE_SKIPPED"
        assert done["GeneratedSpeakerId"] == before["id"]
        assert report_of(queue, stem)["voiceid_status"] == "COMPLETED"
    assert await voiceprint(emulator, "alice") == before  # untouched

    drop(
        queue,
        "over.json",
        voiceid_manifest(request("r3", "alice", ("vid/alice-2.wav", 0)), action="OVERWRITE"),
    )
    assert await run_once(make_settings(queue, url)) == 0
    [row] = report_of(queue, "over")["enrollments"]
    assert row["outcome"] == "replaced" and row["request_id"] == "r3"
    after = await voiceprint(emulator, "alice")
    assert after["id"] != before["id"] and after["id"] == row["voiceprint_id"]
    [done] = output_of(queue, "over")["SuccessfulEnrollments"]
    assert done == {
        "RequestId": "r3",
        "GeneratedSpeakerId": after["id"],
        "CustomerSpeakerId": "alice",
        "EnrollmentStatus": "ENROLLMENT_OVERWRITE",
    }
    assert output_of(queue, "over")["Errors"] == []


async def test_submit_existing_writes_the_policy_into_the_inbox_file(
    emulator: EmulatorHandle, queue: Path, tmp_path: Path
) -> None:
    url = emulator.base_url
    drop(queue, "first.json", voiceid_manifest(request("r1", "alice", ("vid/alice.wav", 0))))
    assert await run_once(make_settings(queue, url)) == 0
    before = await voiceprint(emulator, "alice")

    source = tmp_path / "tonight.json"
    source.write_text(json.dumps(voiceid_manifest(request("r2", "alice", ("vid/alice-2.wav", 0)))))
    flags = ["--queue-dir", str(queue), "--owner", "demo", "--space", "main"]
    assert main(["submit", str(source), *flags, "--existing", "overwrite"]) == 0
    # The policy is in the published file itself: visible, and part of the job id's hash.
    [published] = (queue / "inbox").glob("tonight*.json")
    assert json.loads(published.read_text())["EnrollmentConfig"] == {
        "ExistingEnrollmentAction": "OVERWRITE"
    }
    assert [p.name for p in (queue / "inbox").iterdir()] == [published.name]  # no leftovers
    assert await run_once(make_settings(queue, url)) == 0
    [row] = report_of(queue, "tonight")["enrollments"]
    assert row["outcome"] == "replaced"
    assert (await voiceprint(emulator, "alice"))["id"] != before["id"]


async def test_submit_existing_works_for_our_csv_too(
    emulator: EmulatorHandle, queue: Path, tmp_path: Path
) -> None:
    url = emulator.base_url
    drop(queue, "first.json", {"identity": "alice", "audios": ["vid/alice.wav"]})
    assert await run_once(make_settings(queue, url)) == 0
    before = await voiceprint(emulator, "alice")

    source = tmp_path / "new.csv"
    source.write_text("identity,audio\r\nalice,vid/alice-2.wav\r\n")
    flags = ["--queue-dir", str(queue), "--owner", "demo", "--space", "main"]
    assert main(["submit", str(source), *flags, "--existing", "skip"]) == 0
    [published] = (queue / "inbox").glob("new*.csv")
    assert (
        published.read_bytes().decode()
        == "identity,audio,existing\r\nalice,vid/alice-2.wav,skip\r\n"
    )
    assert await run_once(make_settings(queue, url)) == 0
    [row] = report_of(queue, "new")["enrollments"]
    assert row["outcome"] == "kept"
    assert await voiceprint(emulator, "alice") == before
