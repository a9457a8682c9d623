"""The customer's channel, mixes and conversions, through the worker and the emulator.

A stereo call carries a different voice on each channel: the agent says little (1.5 s of a
220 Hz tone) on channel 0, the customer a lot (4.8 s at 330 Hz) on channel 1. What the emulator
measures of the uploaded audio tells which channel reached it. Real sockets; the crash tests
run the worker as a process and SIGKILL it mid-conversion and after an upload.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

from tests.audiogen import samples, write_audio, write_signal
from tests.emulator_harness import EmulatorHandle, running_emulator
from tests.jobwatch import lease_stale
from tests.support import (
    WORKER,
    drop,
    iso_seconds,
    make_settings,
    report_of,
    run_once,
    wait_for,
    worker_env,
)

RATE = 8000
AGENT_S, CUSTOMER_S, LENGTH_S = 1.5, 4.8, 6.0
SPACE = "/spaces/demo/main"


def write_call(path: Path, codec: str = "pcm_mulaw") -> Path:
    agent = samples(AGENT_S, LENGTH_S - AGENT_S, RATE)
    customer = samples(CUSTOMER_S, LENGTH_S - CUSTOMER_S, RATE, pitch=330.0)
    return write_signal(path, np.stack([agent, customer]), RATE, codec)


async def audio_by_alias(emulator: EmulatorHandle, sha: str) -> dict[str, Any]:
    async with emulator.client() as api:
        listing = await api.get(f"{SPACE}/audios", params={"search": f"sha256:{sha}"})
    [audio] = [a for a in listing.body if a["alias"] == f"sha256:{sha}"]
    return audio


async def test_only_the_named_channel_is_uploaded(emulator: EmulatorHandle, tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    source = write_call(queue / "audio" / "calls" / "c1.wav")
    drop(
        queue,
        "calls.json",
        {
            "model": "phone/v1",
            "enrollments": [
                {"identity": "customer", "audios": [{"path": "calls/c1.wav", "channel": 1}]},
                {"identity": "agent", "audios": [{"path": "calls/c1.wav", "channel": 0}]},
                {"identity": "unnamed", "audios": ["calls/c1.wav"]},
            ],
        },
    )
    # voice_margin 1: no local voice refusal, so the server's detector judges each channel.
    assert await run_once(make_settings(queue, emulator.base_url, voice_margin=1.0)) == 1

    rows = {r["identity"]: r for r in report_of(queue, "calls")["enrollments"]}
    customer = rows["customer"]
    assert customer["outcome"] == "enrolled"
    [derived] = customer["derived"]
    assert derived["file"] == "calls/c1.wav" and derived["channel"] == 1
    assert derived["done"] == "channel 1 of 2 as mono FLAC"
    uploaded = await audio_by_alias(emulator, derived["sha256"])
    # The emulator heard the customer's channel alone: its length, its voice, its rate.
    assert uploaded["state"] == "available" and uploaded["sampleRate"] == RATE
    assert iso_seconds(uploaded["duration"]) == pytest.approx(LENGTH_S, abs=0.01)
    assert iso_seconds(uploaded["voiceDuration"]) == pytest.approx(CUSTOMER_S, abs=0.1)
    # The agent's channel alone has too little voice: the server says so, in the report.
    agent = rows["agent"]
    assert agent["outcome"] == "failed" and agent["error"]["step"] == "add_audio"
    assert "calls/c1.wav (channel 0 of 2 as mono FLAC)" in agent["error"]["reason"]
    # Without a channel, nothing is uploaded.
    unnamed = rows["unnamed"]
    assert unnamed["error"]["step"] == "preflight"
    assert unnamed["error"]["reason"].endswith(
        "stereo recording: name the customer's channel (channel 0 or 1)"
    )
    stats = await emulator.stats()
    assert stats["uploads"]["accepted"] == 2  # the customer's and the agent's channels
    async with emulator.client() as api:
        listing = await api.get(f"{SPACE}/audios")
    source_sha = hashlib.sha256(source.read_bytes()).hexdigest()
    assert f"sha256:{source_sha}" not in {a["alias"] for a in listing.body}  # never the stereo
    assert not list((queue / "active").iterdir())  # the work folder went with the job


async def test_downmix_mixes_a_stereo_file_for_operators_who_ask(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    queue = tmp_path / "queue"
    write_call(queue / "audio" / "mono-ish.wav", codec="pcm_s16le")
    drop(queue, "mix.json", {"identity": "mixed", "audios": ["mono-ish.wav"]})
    settings = make_settings(queue, emulator.base_url, stereo="downmix")
    assert await run_once(settings) == 0
    [row] = report_of(queue, "mix")["enrollments"]
    assert row["outcome"] == "enrolled"
    assert row["derived"][0]["done"] == "2 channels mixed as mono FLAC"
    uploaded = await audio_by_alias(emulator, row["derived"][0]["sha256"])
    assert iso_seconds(uploaded["voiceDuration"]) == pytest.approx(CUSTOMER_S, abs=0.1)


@pytest.mark.parametrize(("name", "done"), [("call.mp3", "mp3"), ("call.m4a", "m4a (aac)")])
async def test_convert_turns_refused_formats_into_flac(
    emulator: EmulatorHandle, tmp_path: Path, name: str, done: str
) -> None:
    queue = tmp_path / "queue"
    write_audio(queue / "audio" / name, 5.0, 1.0, 16000)
    drop(queue, "conv.json", {"identity": "conv", "audios": [name]})
    assert await run_once(make_settings(queue, emulator.base_url, convert=True)) == 0
    [row] = report_of(queue, "conv")["enrollments"]
    assert row["outcome"] == "enrolled"
    assert row["derived"][0]["done"] == f"converted from {done}, as mono FLAC"
    uploaded = await audio_by_alias(emulator, row["derived"][0]["sha256"])
    assert uploaded["state"] == "available" and uploaded["sampleRate"] == 16000
    assert iso_seconds(uploaded["voiceDuration"]) == pytest.approx(5.0, abs=0.15)


# --- SIGKILL mid-conversion and after an upload ------------------------------------------------

CALLS = [f"call-{i}" for i in range(3)]


def _crash_queue(tmp_path: Path) -> Path:
    queue = tmp_path / "queue"
    for i, name in enumerate(CALLS):
        agent = samples(AGENT_S, LENGTH_S - AGENT_S, RATE)
        customer = samples(CUSTOMER_S + i / 100, LENGTH_S - CUSTOMER_S - i / 100, RATE, 330.0)
        write_signal(queue / "audio" / f"{name}.wav", np.stack([agent, customer]), RATE, "pcm_alaw")
    (queue / "inbox").mkdir(parents=True)
    manifest = {
        "enrollments": [
            {"identity": n, "audios": [{"path": f"{n}.wav", "channel": 1}]} for n in CALLS
        ]
    }
    (queue / "inbox" / "calls.json").write_text(json.dumps(manifest))
    return queue


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("crash_at", "converts_again"),
    [
        ("derive.encoding:2", True),  # killed while the first FLAC is being written
        ("derive.discard", False),  # killed right after the first upload was confirmed
    ],
)
async def test_sigkill_then_restart_uploads_each_channel_once(
    tmp_path: Path, crash_at: str, converts_again: bool
) -> None:
    queue = _crash_queue(tmp_path)
    async with running_emulator() as emulator:
        env = worker_env(
            queue, emulator.base_url, ENROLLER_LEASE_TTL="1", ENROLLER_MAX_ENROLLMENTS="1"
        )
        argv = [*WORKER, "run", "--once"]
        crashed = await anyio.run_process(
            argv, env={**env, "ENROLLER_TEST_CRASH_AT": crash_at}, check=False
        )
        assert crashed.returncode == -9  # SIGKILL, at the named instant
        [job_dir] = (queue / "active").iterdir()
        left = sorted(p.name for p in (job_dir / "work").iterdir())
        await wait_for(lambda: lease_stale(queue, 1.0), 30, "the dead worker's lease stale")
        final = await anyio.run_process(argv, env=env, check=False, stderr=subprocess.STDOUT)
        assert final.returncode == 0, final.stdout.decode()[-2000:]
        stats = await emulator.stats()

    if converts_again:
        assert len(left) == 1 and left[0].endswith(".tmp")  # a half-written FLAC, swept
    derived_again = [
        json.loads(line)["file"]
        for line in final.stdout.decode().splitlines()
        if '"audio_derived"' in line
    ]
    # The earlier upload is found by its alias: its channel is not converted again.
    assert ("call-0.wav" in derived_again) is converts_again
    [report_path] = (queue / "reports").glob("calls-*.report.json")
    rows = json.loads(report_path.read_text())["enrollments"]
    assert sorted(r["identity"] for r in rows) == CALLS
    assert {r["outcome"] for r in rows} == {"enrolled"}
    assert stats["created"]["audios"] == len(CALLS)
    assert stats["uploads"]["attempts"] == len(CALLS)  # each derived file sent exactly once
    assert not list((queue / "active").iterdir())
