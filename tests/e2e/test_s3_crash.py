"""SIGKILL while S3 audio is being downloaded, then a restart: each object is downloaded once
(what a killed run completed is used again while its ETag matches; what it left half-written
is swept and fetched again) and each audio uploaded once. The bytes are counted by the S3
server itself (SeaweedFS's per-bucket counter of bytes sent), the uploads by the emulator."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import anyio
import numpy as np
import pytest

from tests.audiogen import samples, write_signal
from tests.e2e.test_recordings_channels import AGENT_S, CUSTOMER_S, LENGTH_S, RATE
from tests.emulator_harness import running_emulator
from tests.jobwatch import lease_stale
from tests.s3_harness import S3Server
from tests.support import WORKER, wait_for, worker_env

CALLS = [f"call-{i}" for i in range(3)]


def _calls_in_s3(server: S3Server, bucket: str, tmp_path: Path) -> int:
    """Three stereo calls (the customer on channel 1) in `bucket`; their total size."""
    server.bucket(bucket)
    total = 0
    for i, name in enumerate(CALLS):
        agent = samples(AGENT_S, LENGTH_S - AGENT_S, RATE)
        customer = samples(CUSTOMER_S + i / 100, LENGTH_S - CUSTOMER_S - i / 100, RATE, 330.0)
        local = write_signal(tmp_path / f"{name}.wav", np.stack([agent, customer]), RATE)
        server.put(bucket, f"calls/{name}.wav", local)
        total += local.stat().st_size
    return total


@pytest.mark.scenario
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("crash_at", "bucket"),
    [
        ("objects.fetched:2", "crash-fetched"),  # the 2nd download complete, then killed
        ("objects.streaming:1", "crash-streaming"),  # killed writing the 1st download
    ],
)
async def test_sigkill_mid_download_resumes_with_each_object_downloaded_once(
    s3_server: S3Server, tmp_path: Path, crash_at: str, bucket: str
) -> None:
    size = _calls_in_s3(s3_server, bucket, tmp_path) // len(CALLS)  # equal lengths
    queue = tmp_path / "queue"
    (queue / "inbox").mkdir(parents=True)
    enrollments = [
        {"identity": n, "audios": [{"path": f"s3://{bucket}/calls/{n}.wav", "channel": 1}]}
        for n in CALLS
    ]
    (queue / "inbox" / "calls.json").write_text(json.dumps({"enrollments": enrollments}))
    async with running_emulator() as emulator:
        env = worker_env(
            queue, emulator.base_url, ENROLLER_LEASE_TTL="1", ENROLLER_MAX_ENROLLMENTS="1"
        )
        env.update(s3_server.env())
        argv = [*WORKER, "run", "--once"]
        crashed = await anyio.run_process(
            argv, env={**env, "ENROLLER_TEST_CRASH_AT": crash_at}, check=False
        )
        assert crashed.returncode == -9  # SIGKILL, at the named instant
        sent_before = s3_server.sent_bytes(bucket)
        [job_dir] = (queue / "active").iterdir()
        left = [p.name for p in (job_dir / "work").iterdir()]
        kept = [n for n in left if n.endswith(".s3")]  # complete downloads
        finished_before = crashed.stdout.decode().count('"enrollment_finished"')
        await wait_for(lambda: lease_stale(queue, 1.0), 30, "the dead worker's lease stale")
        final = await anyio.run_process(argv, env=env, check=False, stderr=subprocess.STDOUT)
        assert final.returncode == 0, final.stdout.decode()[-2000:]
        stats = await emulator.stats()

    log = final.stdout.decode()
    fetched_after, reused = log.count('"object_fetched"'), log.count('"object_reused"')
    # A download the killed run completed is used again, never fetched again…
    if crash_at.startswith("objects.streaming"):
        assert any(n.endswith(".tmp") for n in left)  # the half-written one, swept at restart
    else:
        assert kept
    assert reused == len(kept)
    # …and each object is accounted for once: finished before the kill, kept, or fetched now.
    assert finished_before + len(kept) + fetched_after == len(CALLS)
    # The server's own count: after the restart, the bytes of the fetched objects alone.
    assert s3_server.sent_bytes(bucket) - sent_before == fetched_after * size
    [report_path] = (queue / "reports").glob("calls-*.report.json")
    rows = json.loads(report_path.read_text())["enrollments"]
    assert {r["outcome"] for r in rows} == {"enrolled"} and len(rows) == len(CALLS)
    assert stats["uploads"]["attempts"] == len(CALLS)  # each derived file sent exactly once
    assert not list((queue / "active").iterdir())
