"""kill -9 mid-job, as a real process, then restart: nothing lost, nothing done twice."""

from __future__ import annotations

import json
import random
import signal
import subprocess
from pathlib import Path

import anyio
import pytest

from tests.audiogen import write_audio
from tests.emulator_harness import running_emulator
from tests.worker_process import WORKER, worker_env

IDENTITIES = [f"crash-{i:02d}" for i in range(24)]


@pytest.mark.timeout(120)
async def test_sigkill_midjob_then_restart_completes_exactly_once(tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    for name in IDENTITIES:
        write_audio(queue / "audio" / f"{name}.wav", voice_s=5.0, samplerate=8000)
    (queue / "inbox").mkdir(parents=True)
    manifest = {"enrollments": [{"identity": i, "audios": [f"{i}.wav"]} for i in IDENTITIES]}
    (queue / "inbox" / "crash.json").write_text(json.dumps(manifest))
    rng = random.Random(5)

    async with running_emulator() as emulator:
        env = worker_env(
            queue,
            emulator.base_url,
            ENROLLER_RATE_LIMIT="60",
            ENROLLER_BURST="5",
            ENROLLER_LEASE_TTL="1",
        )
        argv = [*WORKER, "run", "--once"]
        kills = 0
        for _ in range(3):
            proc = await anyio.open_process(argv, env=env, stderr=subprocess.DEVNULL)
            await anyio.sleep(rng.uniform(0.6, 1.4))
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            await proc.wait()
            await anyio.sleep(1.1)  # let the dead worker's lease go stale
        final = await anyio.run_process(argv, env=env, check=False)
        assert final.returncode == 0, final.stderr.decode()[-2000:]

        stats = await emulator.stats()
    assert kills >= 2  # the job was really interrupted
    [report_path] = (queue / "reports").glob("crash-*.report.json")
    report = json.loads(report_path.read_text())
    rows = report["enrollments"]
    assert sorted(r["identity"] for r in rows) == IDENTITIES  # complete, one row each
    assert {r["outcome"] for r in rows} <= {"enrolled", "unchanged"}
    usage = report["usage"]
    assert usage["found"] == usage["expected"] and not usage["double_charged"]
    assert stats["created"]["identities"] == len(IDENTITIES)
    assert stats["created"]["voiceprints"] == len(IDENTITIES)
    assert stats["created"]["computes"] == len(IDENTITIES)  # one charge per identity
    assert stats["created"]["audios"] == len(IDENTITIES)  # each file uploaded once
    assert not list((queue / "inbox").iterdir()) and list((queue / "done").iterdir())
