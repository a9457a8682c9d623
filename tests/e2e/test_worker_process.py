"""`enroller run` as a real process: the daemon picks files up; SIGTERM checkpoints and exits 0."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import anyio
import pytest

from tests.emulator_harness import running_emulator
from tests.jobwatch import current_lease, job_dirs, journal_records, kinds
from tests.support import WORKER, drop, job_manifest, make_queue, start_worker, wait_for, worker_env


@pytest.mark.timeout(90)
async def test_sigterm_checkpoints_exits_zero_and_next_start_resumes(tmp_path: Path) -> None:
    ids = [f"term-{i:02d}" for i in range(30)]
    queue = make_queue(tmp_path / "queue", ids, step_s=0)
    drop(queue, "big.json", job_manifest(ids))
    async with running_emulator(latency_ms=20) as emulator:
        env = worker_env(
            queue,
            emulator.base_url,
            ENROLLER_RATE_LIMIT="40",
            ENROLLER_SHUTDOWN_GRACE="5",
            ENROLLER_MAX_ENROLLMENTS="2",  # so most of the job is still to do at SIGTERM
        )
        argv = [*WORKER, "run", "--once"]
        proc = await anyio.open_process(argv, env=env, stderr=subprocess.PIPE)
        await wait_for(
            lambda: kinds(journal_records(queue), "outcome"), 30, "a first enrollment outcome"
        )
        proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(15):  # the grace period plus start-up slack
            code = await proc.wait()
        assert proc.stderr is not None
        stderr = (await proc.stderr.receive(1 << 20)).decode(errors="replace")
        assert code == 0, stderr[-2000:]
        assert "worker_stopping" in stderr
        # The job is checkpointed, not reported: still active, its lease released at once.
        assert job_dirs(queue) and not list((queue / "reports").glob("*"))
        lease = current_lease(queue)
        assert lease is not None and lease["released"] is True, lease
        journal = journal_records(queue)
        done = {r["identity"] for r in kinds(journal, "outcome")}
        assert 0 < len(done) < len(ids), done  # stopped mid-job
        assert not kinds(journal, "job_finished")

        emulator.requests.clear()
        final = await anyio.run_process(argv, env=env, check=False)
        assert final.returncode == 0, final.stderr.decode()[-2000:]
        stats = await emulator.stats()
        resumed = list(emulator.requests)
    [report] = (queue / "reports").glob("big-*.report.json")
    rows = json.loads(report.read_text())["enrollments"]
    assert sorted(r["identity"] for r in rows) == ids
    # Resumed from the journal: what it proves done costs no request at all the second time.
    about_done = [r for r in resumed if any(r.mentions(i) for i in done)]
    assert about_done == [], about_done[:5]
    assert any(r.mentions(i) for r in resumed for i in set(ids) - done)  # the rest did run
    assert stats["created"]["voiceprints"] == len(ids) == stats["created"]["computes"]
    assert stats["created"]["audios"] == len(ids)


@pytest.mark.timeout(60)
async def test_daemon_picks_up_dropped_files_until_sigterm(tmp_path: Path) -> None:
    queue = make_queue(tmp_path / "queue", ["day-1", "day-2"], step_s=0)
    log = tmp_path / "worker.base.log"
    async with running_emulator() as emulator:
        env = worker_env(queue, emulator.base_url)
        proc = await start_worker(env, log, once=False)
        try:
            await wait_for(lambda: b"worker_started" in log.read_bytes(), 30, "worker_started")
            drop(queue, "morning.json", job_manifest(["day-1"]))
            await wait_for(lambda: list((queue / "reports").glob("morning-*.report.json")), 30)
            drop(queue, "evening.json", job_manifest(["day-2"]))
            await wait_for(lambda: list((queue / "reports").glob("evening-*.report.json")), 30)
        finally:
            proc.send_signal(signal.SIGTERM)
            with anyio.fail_after(15):
                code = await proc.wait()
    assert code == 0, log.read_text()[-2000:]
    assert len(list((queue / "done").iterdir())) == 2


def test_run_without_credentials_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from worker.cli import main

    assert main(["run", "--once", "--queue-dir", str(tmp_path / "q")]) == 2
    assert "ENROLLER_API_KEY" in capsys.readouterr().err


def test_run_against_an_unreachable_api_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker.cli import main

    monkeypatch.setenv("ENROLLER_API_KEY", "k-unreachable")  # a key is never a flag (issue 21)
    code = main(
        [
            "run",
            "--once",
            "--queue-dir",
            str(tmp_path / "q"),
            "--api-url",
            "http://127.0.0.1:9/v1",
            "--max-retries",
            "0",
            "--retry-max-time",
            "1",
        ]
    )
    assert code == 2


async def test_run_with_a_rejected_key_exits_2_and_never_shows_it(tmp_path: Path) -> None:
    queue = make_queue(tmp_path / "queue", ["k-1"], step_s=0)
    drop(queue, "job.json", job_manifest(["k-1"]))
    async with running_emulator() as emulator:
        env = worker_env(queue, emulator.base_url, ENROLLER_API_KEY="wrong-key-7f3a9c")
        result = await anyio.run_process([*WORKER, "run", "--once"], env=env, check=False)
    assert result.returncode == 2
    err = result.stderr.decode()
    assert "401" in err and "wrong-key-7f3a9c" not in err
    assert list((queue / "inbox").iterdir())  # nothing was claimed: the file waits for a fix
