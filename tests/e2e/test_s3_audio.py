"""s3:// audio through the worker: a real S3 server (SeaweedFS) and the emulator, in-process.

The AWS chain is the users' own: the worker is given AWS_* variables only (endpoint, region,
keys), as the README's "Audio in S3" says. A stereo call with the customer on channel 1 proves
the download reaches channel selection: the emulator measures the customer's voice alone.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
from pathlib import Path

import anyio
import pytest

from tests.audiogen import write_audio
from tests.e2e.test_recordings_channels import CUSTOMER_S, audio_by_alias, write_call
from tests.emulator_harness import EmulatorHandle
from tests.s3_harness import SECRET_KEY, S3Server
from tests.support import (
    drop,
    iso_seconds,
    make_settings,
    report_of,
    run_once,
    run_worker,
    worker_env,
)
from worker.api.client import ApiClient
from worker.commands.check import run_check
from worker.service import Service

BUCKET = "calls-e2e"


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The worker's S3 configuration, as a user sets it: AWS_* variables, nothing else."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    s3_server.bucket(BUCKET)
    return s3_server


async def test_s3_audio_in_json_and_csv_enrolls_from_the_named_channel(
    s3_env: S3Server, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    local = tmp_path / "src"
    mono = write_audio(local / "mono.wav", 5.0, 1.0, 8000)
    call = write_call(local / "call.wav", codec="pcm_s16le")
    s3_env.put(BUCKET, "e2e/mono.wav", mono)
    s3_env.put(BUCKET, "e2e/call.wav", call)
    s3_env.put(BUCKET, "e2e/other.wav", write_audio(local / "other.wav", 6.0, 1.0, 8000))
    queue = tmp_path / "queue"
    drop(
        queue,
        "fromjson.json",
        {
            "model": "phone/v1",
            "enrollments": [
                {"identity": "mono", "audios": [f"s3://{BUCKET}/e2e/mono.wav"]},
                {
                    "identity": "caller",
                    "audios": [{"path": f"s3://{BUCKET}/e2e/call.wav", "channel": 1}],
                },
            ],
        },
    )
    drop(queue, "fromcsv.csv", f"identity,audio\ncsv-mono,s3://{BUCKET}/e2e/other.wav\n")
    settings = make_settings(queue, emulator.base_url, voice_margin=1.0)
    assert await run_once(settings) == 0

    rows = {r["identity"]: r for r in report_of(queue, "fromjson")["enrollments"]}
    assert rows["mono"]["outcome"] == "enrolled"
    caller = rows["caller"]
    assert caller["outcome"] == "enrolled"
    [derived] = caller["derived"]
    assert derived["file"] == f"s3://{BUCKET}/e2e/call.wav" and derived["channel"] == 1
    uploaded = await audio_by_alias(emulator, derived["sha256"])
    assert iso_seconds(uploaded["voiceDuration"]) == pytest.approx(CUSTOMER_S, abs=0.1)
    # The mono file went up as it is: its alias is the hash of the object's bytes.
    mono_sha = hashlib.sha256(mono.read_bytes()).hexdigest()
    assert (await audio_by_alias(emulator, mono_sha))["state"] == "available"
    [csv_row] = report_of(queue, "fromcsv")["enrollments"]
    assert csv_row["identity"] == "csv-mono" and csv_row["outcome"] == "enrolled"
    assert not list((queue / "active").iterdir())  # downloads went with their enrollments


async def test_each_unreadable_object_fails_its_enrollment_with_its_reason(
    s3_env: S3Server, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    good = write_audio(tmp_path / "good.wav", 5.0, 1.0, 8000)
    s3_env.put(BUCKET, "bad/good.wav", good)
    s3_env.put(BUCKET, "bad/huge.wav", b"\0" * 100_000)
    queue = tmp_path / "queue"
    cases = {
        "no-key": (f"s3://{BUCKET}/bad/missing.wav", "no such object: bad/missing.wav"),
        "no-bucket": ("s3://no-such-bucket-e2e/a.wav", "no such bucket: no-such-bucket-e2e"),
        "too-big": (f"s3://{BUCKET}/bad/huge.wav", "over the 99999-byte limit"),
        "bad-address": ("s3://Not_A_Bucket/a.wav", "not a valid S3 bucket name"),
    }
    enrollments = [{"identity": "good", "audios": [f"s3://{BUCKET}/bad/good.wav"]}]
    enrollments += [{"identity": who, "audios": [uri]} for who, (uri, _) in cases.items()]
    drop(queue, "bad.json", {"model": "phone/v1", "enrollments": enrollments})
    settings = make_settings(queue, emulator.base_url, s3_max_object_bytes=99_999)
    assert await run_once(settings) == 1

    report = report_of(queue, "bad")
    rows = {r["identity"]: r for r in report["enrollments"]}
    assert rows["good"]["outcome"] == "enrolled"
    for who, (_, reason) in cases.items():
        assert rows[who]["outcome"] == "failed", who
        assert reason in rows[who]["error"]["reason"], rows[who]["error"]
    for path in (queue / "reports").iterdir():
        assert SECRET_KEY not in path.read_text(errors="replace")
    assert (await emulator.stats())["uploads"]["accepted"] == 1  # the good one only


async def test_check_reports_each_unreadable_object_before_the_run(
    s3_env: S3Server, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    s3_env.put(BUCKET, "check/ok.wav", b"RIFF" + b"\0" * 100)
    s3_env.put(BUCKET, "check/big.wav", b"\0" * 5000)
    manifest = tmp_path / "tonight.json"
    rows = [
        {"identity": "ok", "audios": [f"s3://{BUCKET}/check/ok.wav"]},
        {"identity": "gone", "audios": [f"s3://{BUCKET}/check/gone.wav"]},
        {"identity": "big", "audios": [f"s3://{BUCKET}/check/big.wav"]},
    ]
    manifest.write_text(json.dumps({"model": "phone/v1", "enrollments": rows}))
    settings = make_settings(tmp_path / "queue", emulator.base_url, s3_max_object_bytes=4096)
    out = io.StringIO()
    code = await anyio.to_thread.run_sync(lambda: run_check(settings, [str(manifest)], False, out))
    lines = out.getvalue().splitlines()
    assert code == 1
    gone = f"no such object: check/gone.wav in bucket {BUCKET}"
    assert f"FAIL object s3://{BUCKET}/check/gone.wav: {gone}" in lines
    big = "is 5000 bytes, over ENROLLER_S3_MAX_OBJECT_BYTES (4096)"
    assert f"FAIL object s3://{BUCKET}/check/big.wav: {big}" in lines
    assert "FAIL objects: 1 of 3 readable (HEAD)" in lines
    assert SECRET_KEY not in out.getvalue()


async def test_an_endpoint_that_does_not_answer_fails_the_enrollment_not_the_run(
    s3_env: S3Server,
    emulator: EmulatorHandle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{silent.getsockname()[1]}")
        queue = tmp_path / "queue"
        drop(queue, "silent.json", {"identity": "c1", "audios": [f"s3://{BUCKET}/x.wav"]})
        settings = make_settings(queue, emulator.base_url, s3_attempts=2, s3_timeout=0.5)
        assert await run_once(settings) == 1
    [row] = report_of(queue, "silent")["enrollments"]
    assert row["outcome"] == "failed" and row["error"]["step"] == "preflight"
    assert "the S3 endpoint http://127.0.0.1:" in row["error"]["reason"]
    assert row["error"]["reason"].endswith("did not answer in time (2 attempts)")


async def test_debug_logs_carry_no_aws_credential(
    s3_env: S3Server, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """At debug level, botocore would print each request's signature and session token: the
    worker keeps its loggers at info. The worker runs as users run it, a process. (SeaweedFS
    refuses a session token its static keys did not issue, so the read is denied; the token
    is sent, signed and, without the cap, logged all the same.)"""
    s3_env.put(BUCKET, "logs/a.wav", write_audio(tmp_path / "a.wav", 5.0, 1.0, 8000))
    queue = tmp_path / "queue"
    drop(queue, "logs.json", {"identity": "logs", "audios": [f"s3://{BUCKET}/logs/a.wav"]})
    token = "session-token-never-logged-7f3a"
    env = worker_env(queue, emulator.base_url, ENROLLER_LOG_LEVEL="debug")
    env.update(s3_env.env(AWS_SESSION_TOKEN=token))
    log = tmp_path / "worker.log"
    assert await run_worker(env, log) == 1  # the enrollment fails: access denied
    text = log.read_text()
    assert '"level": "debug"' in text  # it did log at debug…
    assert '"logger": "botocore.' in text  # …and botocore's lines reach the log
    assert "access denied" in text
    for secret in (token, SECRET_KEY, "Signature=", "Credential="):
        assert secret not in text, secret


class WorkFolderWatch:
    """An observer (the service's seam) that counts the downloads in the job's work folder
    each time an enrollment has finished, while the job's folder still exists."""

    def __init__(self, queue: Path) -> None:
        self.queue = queue
        self.downloads: list[int] = []

    def job_started(self, job_id: str, name: str, progress: object) -> None:
        pass

    def enrollment_finished(self, outcome: str) -> None:
        [job_dir] = (self.queue / "active").iterdir()
        self.downloads.append(len(list((job_dir / "work").glob("*.s3"))))

    def job_ended(self, result: object) -> None:
        pass


async def test_each_download_is_deleted_when_its_enrollment_ends(
    s3_env: S3Server, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    names = [f"del-{i}" for i in range(3)]
    for i, name in enumerate(names):
        audio = write_audio(tmp_path / f"{name}.wav", 5.0 + i / 10, 1.0, 8000)
        s3_env.put(BUCKET, f"del/{name}.wav", audio)
    queue = tmp_path / "queue"
    rows = [{"identity": n, "audios": [f"s3://{BUCKET}/del/{n}.wav"]} for n in names]
    drop(queue, "del.json", {"enrollments": rows})
    settings = make_settings(queue, emulator.base_url, max_enrollments=1)
    watch = WorkFolderWatch(queue)
    async with ApiClient.from_settings(settings) as client:
        assert await Service(settings, client, observer=watch).run(once=True) == 0
    assert len(watch.downloads) == len(names)
    # The last enrollment ended with the job still in active/: its download is gone already.
    assert watch.downloads[-1] == 0
