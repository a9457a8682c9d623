"""Real `enroller run` processes against the emulator when things go wrong around them: an API
outage longer than the retry budget, a lease lost while the process was frozen, a shutdown in
the middle of a slow upload, and a CSV exported with CRLF line ends.

Every wait is on something the worker or the emulator has provably done (journal records,
requests received, log lines), never on elapsed time (tests/jobwatch.py).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import anyio
import pytest

from tests.emulator_harness import running_emulator
from tests.jobwatch import job_dirs, journal_records, kinds, lease_stale, only_report, reports
from tests.support import (
    WORKER,
    assert_no_crash,
    drop,
    job_manifest,
    make_queue,
    start_worker,
    wait_for,
    worker_env,
)

ONCE = [*WORKER, "run", "--once"]


@pytest.mark.scenario
@pytest.mark.timeout(120)
async def test_an_api_outage_longer_than_the_retry_budget_fails_rows_clearly_and_loses_none(
    tmp_path: Path,
) -> None:
    ids = [f"out-{i:02d}" for i in range(12)]
    queue = make_queue(tmp_path / "queue", ids)
    drop(queue, "outage.json", job_manifest(ids))
    log = tmp_path / "worker.base.log"
    state = tmp_path / "emulator-state.json"
    async with running_emulator(state_file=state) as emu:
        env = worker_env(
            queue,
            emu.base_url,
            ENROLLER_RATE_LIMIT="30",
            ENROLLER_MAX_RETRIES="2",
            ENROLLER_RETRY_MAX_TIME="2",
        )
        proc = await start_worker(env, log)
        await wait_for(lambda: kinds(journal_records(queue), "outcome"), 60, "a first outcome")
        await emu.stop()  # the API goes away, for longer than any retry budget
        with anyio.fail_after(60):  # it gives up within its budget: no hang, no crash loop
            code = await proc.wait()
        assert_no_crash(log)
        assert code == 1, log.read_text()[-2000:]  # failed rows, said in the exit code

        report = only_report(queue)
        rows = report["enrollments"]  # type: ignore[index]
        assert sorted(r["identity"] for r in rows) == ids  # every row reported, none lost
        failed = [r for r in rows if r["outcome"] == "failed"]
        assert failed and all(r["error"]["reason"] for r in failed), failed
        assert {r["outcome"] for r in rows} <= {"enrolled", "failed"}, rows
        assert [p.name for p in (queue / "failed").iterdir()] == []  # the job ran: done/
        [retry] = (queue / "reports").glob("*.retry.json")

        # The API is back: the retry manifest dropped in as it is enrolls the rest, once.
        await emu.restart()
        drop(queue, "retry.json", retry.read_bytes())
        again = await anyio.run_process(ONCE, env=env, check=False)
        assert again.returncode == 0, again.stderr.decode()[-2000:]
        state_now = emu.emulator.state.spaces["demo/main"]
        for identity in ids:
            vps = [v for k, v in state_now.voiceprints.items() if k.startswith(f"{identity}/")]
            assert len(vps) == 1 and vps[0].state == "computed", (identity, vps)
    assert len(emu.emulator.state.records) == len(ids)  # one charge per voiceprint


@pytest.mark.timeout(60)
async def test_a_csv_with_crlf_line_ends_runs_through_the_worker(tmp_path: Path) -> None:
    ids = ["crlf-a", "crlf-b", "crlf-c"]
    queue = make_queue(tmp_path / "queue", ids)
    rows = "".join(f"{i},{i}.wav\r\n" for i in ids)
    drop(queue, "export.csv", f"\ufeffidentity,audio\r\n{rows}\r\n".encode())
    async with running_emulator() as emu:
        done = await anyio.run_process(ONCE, env=worker_env(queue, emu.base_url), check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    report = only_report(queue)
    got = {r["identity"]: (r["outcome"], r["source"]) for r in report["enrollments"]}  # type: ignore[index]
    # Identities without a trailing \r, each on its own line, all enrolled.
    assert got == {i: ("enrolled", f"line {n + 2}") for n, i in enumerate(ids)}, got


@pytest.mark.scenario
@pytest.mark.timeout(120)
async def test_a_worker_frozen_past_its_lease_sends_nothing_once_thawed_and_charges_once(
    tmp_path: Path,
) -> None:
    ids = [f"stop-{i:02d}" for i in range(16)]
    queue = make_queue(tmp_path / "queue", ids)
    drop(queue, "frozen.json", job_manifest(ids))
    world = tmp_path / "world.json"  # one user with two keys: the log tells the workers apart
    world.write_text(
        json.dumps(
            {
                "users": [{"handle": "demo", "api_keys": ["key-frozen", "key-taker"]}],
                "spaces": [{"owner": "demo", "handle": "main"}],
            }
        )
    )
    frozen_log, taker_log = tmp_path / "frozen.log", tmp_path / "taker.log"
    async with running_emulator(config=world) as emu:
        common = {"ENROLLER_RATE_LIMIT": "20", "ENROLLER_LEASE_TTL": "1"}
        env_a = worker_env(queue, emu.base_url, ENROLLER_API_KEY="key-frozen", **common)
        env_b = worker_env(queue, emu.base_url, ENROLLER_API_KEY="key-taker", **common)
        frozen = await start_worker(env_a, frozen_log)
        await wait_for(lambda: len(kinds(journal_records(queue), "outcome")) >= 2, 60, "progress")
        frozen.send_signal(signal.SIGSTOP)  # a frozen VM, a stalled process
        try:
            await wait_for(lambda: lease_stale(queue, 1.0), 30, "the frozen worker's lease stale")
            taker = await start_worker(env_b, taker_log)
            await wait_for(lambda: b"queue_lease_taken_over" in taker_log.read_bytes(), 60)
        finally:
            thawed_at = sum(r.token == "key-frozen" for r in emu.requests)  # stopped: all in
            frozen.send_signal(signal.SIGCONT)
        # The thawed worker finds its lease gone at its next renewal and stops the job: taken
        # over (queue_lease_lost), or already finished by the taker, its folder gone (the
        # renewal fails past the TTL); the job's boundary logs job_lease_lost for both.
        await wait_for(lambda: b"job_lease_lost" in frozen_log.read_bytes(), 30, "lease lost")
        with anyio.fail_after(60):
            await frozen.wait()
            assert await taker.wait() == 0, taker_log.read_text()[-2000:]
        late = [r for r in emu.requests if r.token == "key-frozen"][thawed_at:]
        stats = await emu.stats()
    assert_no_crash(frozen_log)
    assert_no_crash(taker_log)
    # Thawed, it trusts its lease no more (renewed over 2/3 of the TTL ago by its own clock),
    # so every request waiting for its send time first waits for a renewal, which finds the
    # lease taken: not one request leaves after the thaw.
    assert late == [], [f"{r.method} {r.path}" for r in late]
    report = only_report(queue)
    assert sorted(r["identity"] for r in report["enrollments"]) == ids  # type: ignore[index]
    assert b"job_finished" not in frozen_log.read_bytes()
    assert stats["created"]["voiceprints"] == len(ids)
    assert stats["created"]["computes"] == len(ids)  # one charge per voiceprint
    assert stats["created"]["audios"] == len(ids)


@pytest.mark.scenario
@pytest.mark.parametrize(
    "second_sigterm",
    [
        pytest.param(False, id="grace-expires"),
        pytest.param(True, id="second-sigterm"),
    ],
)
@pytest.mark.timeout(120)
async def test_shutdown_during_a_slow_upload_exits_zero_and_resumes_on_the_same_audio(
    tmp_path: Path, second_sigterm: bool
) -> None:
    ids = ["slow-a", "slow-b"]
    queue = make_queue(tmp_path / "queue", ids)
    drop(queue, "slow.json", job_manifest(ids))
    log = tmp_path / "worker.base.log"
    state = tmp_path / "emulator-state.json"
    async with running_emulator(latency_ms=1500, state_file=state) as emu:
        env = worker_env(
            queue,
            emu.base_url,
            ENROLLER_SHUTDOWN_GRACE="0.5",
            ENROLLER_INLINE_UPLOAD_MAX_BYTES="0",  # a create, then the file in its own upload
        )
        proc = await start_worker(env, log)
        # An upload has reached the server and sits in its 1.5 s latency: longer than the grace.
        await wait_for(lambda: any(r.path.endswith("/file") for r in emu.requests), 60, "an upload")
        proc.send_signal(signal.SIGTERM)  # phase one: the grace (0.5 s) ends before the upload
        await wait_for(lambda: b"worker_stopping" in log.read_bytes(), 30, "worker_stopping")
        if second_sigterm:
            proc.send_signal(signal.SIGTERM)  # impatient: the second one cancels at once
        with anyio.fail_after(30):
            code = await proc.wait()
        assert_no_crash(log)
        assert code == 0, log.read_text()[-2000:]
        assert job_dirs(queue) and not reports(queue)  # checkpointed, not reported
        created = {r["sha256"]: r["audio"] for r in kinds(journal_records(queue), "audio_created")}
        assert created, "the cut upload's audio must be journaled before its upload"

        before = await emu.stats()
        await emu.restart(latency_ms=0)  # the same state: the audio created before is there
        final = await anyio.run_process(ONCE, env=env, check=False)
        assert final.returncode == 0, final.stderr.decode()[-2000:]
        stats = await emu.stats()  # since the restart
        audios = emu.emulator.state.spaces["demo/main"].audios
    report = only_report(queue)
    assert {r["outcome"] for r in report["enrollments"]} == {"enrolled"}  # type: ignore[index]
    # The same audio handle, reused: no new audio for a file whose audio was journaled, and
    # every file uploaded once in all (an upload cut before the server read it never landed).
    assert len(audios) == len(ids), sorted(audios)
    assert set(created.values()) <= set(audios)
    assert all(a.state == "available" for a in audios.values())
    accepted = before["uploads"]["accepted"] + stats["uploads"]["accepted"]
    assert accepted == len(ids), (before["uploads"], stats["uploads"])  # each file once
    assert before["created"]["audios"] + stats["created"]["audios"] == len(ids)
