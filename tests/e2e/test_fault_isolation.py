"""Issue 11: no input can stop the worker. Real `enroller run --once` processes against the
emulator: a queue of hostile files drains, one job's exception ends that job only, a job that
kills its worker is failed after three starts, a corrupt journal fails its job, and a job
cancelled by phase two of a shutdown gives its lease back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import anyio
import pytest

from tests.audiogen import write_audio
from tests.emulator_harness import EmulatorHandle, running_emulator
from tests.jobwatch import job_dirs, lease_stale
from tests.support import WORKER, wait_for, worker_env

GOOD_IDS = ("good-1", "good-2", "good-3")


def _audio(queue: Path) -> Path:
    root = queue / "audio"
    for identity in GOOD_IDS:
        write_audio(root / f"{identity}.wav", voice_s=5.0, samplerate=8000)
    write_audio(root / "real.wav", voice_s=5.0, samplerate=8000)
    os.mkfifo(root / "fifo.wav")
    (root / "folder.wav").mkdir()
    os.symlink(root / "fifo.wav", root / "link-to-fifo.wav")  # inside the root, to a FIFO
    os.symlink("/dev/zero", root / "zero.wav")  # leads outside the root
    return root


def _queue(tmp_path: Path) -> tuple[Path, Path]:
    """A queue with the test audio in place and an empty inbox: (queue, inbox)."""
    queue = tmp_path / "queue"
    _audio(queue)
    inbox = queue / "inbox"
    inbox.mkdir(parents=True)
    return queue, inbox


def _one(audio: str, identity: str = "ok-1") -> bytes:
    return json.dumps({"identity": identity, "audios": [audio]}).encode()


# Every class of bad input of issue 11, as raw bytes, by inbox file name.
HOSTILE: dict[str, bytes] = {
    "spreadsheet-empty.csv": b",,,\r\n",
    "only-quotes.csv": b'""',
    "bom-only.csv": b"\xef\xbb\xbf",
    "bom-only.json": b"\xef\xbb\xbf",
    "zero-bytes.json": b"",
    "nul-in-csv.csv": b"identity,audio\nbad\x00one,real.wav\n",
    "nul-in-json.json": b'{"identity": "a\x00", "audios": ["real.wav"]}',
    "surrogate-identity.json": b'{"identity": "\\ud800", "audios": ["real.wav"]}',
    "surrogate-audio.json": b'{"identity": "sur-audio", "audios": ["\\udc80.wav"]}',
    "surrogate-alias.json": b'{"identity": "sur-alias", "alias": "\\udfff", "audios": ["a.wav"]}',
    "surrogate-key.json": b'{"identity": "sur-key", "\\ud800": 1, "audios": ["real.wav"]}',
    "deep-array.json": b"[" * 100_000,
    "deep-object.json": b'{"a":' * 100_000,
    "huge-integer.json": b'{"identity": "big", "audios": ["real.wav"], "minAudios": '
    + b"9" * 5000
    + b"}",
    "nan.json": b'{"identity": "nan", "audios": ["real.wav"], "minAudios": NaN}',
    "infinity.json": b'{"identity": "inf", "audios": ["real.wav"], "minAudios": -Infinity}',
    "wrong-types.json": b'{"owner": [], "enrollments": [1, "x", null, {"identity": 5}]}',
    "wrong-types-2.json": b'{"identity": "t", "audios": "real.wav", "createIdentity": "maybe"}',
    "enrollments-object.json": b'{"enrollments": {}}',
    "top-array.json": b"[]",
    "top-null.json": b"null",
    "ragged.csv": b"identity,audio\nrag-1\nrag-2,real.wav,extra,more\n",
    "duplicate-header.csv": b"identity,audio,audio\ndup,real.wav,real.wav\n",
    "latin-1.csv": b"identity,audio\ncaf\xe9,real.wav\n",
    "fifo-audio.json": _one("fifo.wav", "fifo"),
    "directory-audio.json": _one("folder.wav", "folder"),
    "symlink-to-fifo.json": _one("link-to-fifo.wav", "linkfifo"),
    "device-audio.json": _one("zero.wav", "zero"),
    "outside-root.json": _one("../../etc/passwd", "passwd"),
    "truncated.json": b'{"enrollments": [{"identity": "cut", "audios": ["re',
    "garbage.csv": os.urandom(64),
}
# A name that is not valid UTF-8 (os.listdir gives it back with surrogate escapes).
NON_UTF8_NAME = b"caf\xe9-\xff.json"


def _drop_non_utf8_name(inbox: Path) -> None:
    path = os.path.join(os.fsencode(inbox), NON_UTF8_NAME)
    Path(os.fsdecode(path)).write_bytes(b'{"identity": "\\ud800", "audios": ["real.wav"]}')


def _good_manifests(inbox: Path) -> None:
    (inbox / "good.json").write_text(
        json.dumps({"enrollments": [{"identity": i, "audios": [f"{i}.wav"]} for i in GOOD_IDS[:2]]})
    )
    (inbox / "good.csv").write_text(f"identity,audio\r\n{GOOD_IDS[2]},{GOOD_IDS[2]}.wav\r\n")


def _tracebacks(stderr: bytes) -> int:
    return stderr.count(b"Traceback (most recent call last)")


@pytest.mark.timeout(120)
async def test_a_hostile_queue_drains_in_two_runs_with_no_traceback(
    tmp_path: Path, emulator: EmulatorHandle
) -> None:
    queue, inbox = _queue(tmp_path)
    for name, data in HOSTILE.items():
        (inbox / name).write_bytes(data)
    _drop_non_utf8_name(inbox)
    _good_manifests(inbox)
    dropped = len(os.listdir(inbox))
    env = worker_env(queue, emulator.base_url, ENROLLER_RATE_LIMIT="200", ENROLLER_BURST="20")

    first = await anyio.run_process([*WORKER, "run", "--once"], env=env, check=False)
    assert first.returncode == 1, first.stderr.decode(errors="replace")[-3000:]
    assert _tracebacks(first.stderr) == 0, first.stderr.decode(errors="replace")[-3000:]
    assert os.listdir(queue / "active") == [] and os.listdir(inbox) == []
    done = os.listdir(queue / "done")
    failed = [n for n in os.listdir(queue / "failed") if not n.endswith(".error.json")]
    assert len(done) + len(failed) == dropped  # every manifest accounted for, once
    for name in os.listdir(queue / "failed"):
        if name.endswith(".error.json"):
            error = json.loads((queue / "failed" / name).read_bytes())
            assert error["problems"] and all(p["reason"] for p in error["problems"]), error

    reports = [json.loads(p.read_bytes()) for p in (queue / "reports").glob("*.report.json")]
    rows = {r["identity"]: r for report in reports for r in report["enrollments"]}
    for identity in GOOD_IDS:
        assert rows[identity]["outcome"] == "enrolled", rows[identity]
    for identity in ("fifo", "folder", "linkfifo", "zero", "sur-alias", "sur-audio"):
        assert identity not in rows or rows[identity]["outcome"] == "failed", rows.get(identity)
    # Its one enrollment cannot run: reported failed with the reason (issue 30), not failed/.
    assert "FIFO" in rows["fifo"]["error"]["reason"], rows["fifo"]

    second = await anyio.run_process([*WORKER, "run", "--once"], env=env, check=False)
    assert second.returncode == 0, second.stderr.decode(errors="replace")[-2000:]
    assert _tracebacks(second.stderr) == 0
    events = [json.loads(line)["event"] for line in second.stderr.splitlines() if line]
    assert "queue_claimed" not in events  # nothing left to do


@pytest.mark.timeout(60)
async def test_an_exception_in_one_job_fails_that_job_alone(
    tmp_path: Path, emulator: EmulatorHandle
) -> None:
    queue, inbox = _queue(tmp_path)
    _good_manifests(inbox)
    (inbox / "doomed.json").write_text(json.dumps({"identity": "doomed", "audios": ["real.wav"]}))
    env = worker_env(
        queue,
        emulator.base_url,
        ENROLLER_TEST_RAISE_AT="job.enrolling@doomed",
        ENROLLER_MAX_JOBS="4",
    )
    run = await anyio.run_process([*WORKER, "run", "--once"], env=env, check=False)
    assert run.returncode == 1, run.stderr.decode()[-2000:]  # 1: a job failed; never 2
    assert _tracebacks(run.stderr) == 1  # logged once, at error level
    [crash] = [json.loads(line) for line in run.stderr.splitlines() if b'"job_crashed"' in line]
    assert crash["level"] == "error" and "InjectedFault" in crash["exception"]

    [error_file] = (queue / "failed").glob("doomed-*.error.json")
    error = json.loads(error_file.read_text())
    assert error["error"] == {
        "exception": "InjectedFault",
        "message": "fault injected at job.enrolling",
        "phase": "enroll",
    }
    assert "Traceback" not in error_file.read_text()
    assert list((queue / "failed").glob("doomed-*.json")) != []
    assert not list((queue / "reports").glob("doomed-*"))
    assert os.listdir(queue / "active") == []
    rows = [
        row
        for p in (queue / "reports").glob("good-*.report.json")
        for row in json.loads(p.read_text())["enrollments"]
    ]
    assert sorted(r["identity"] for r in rows) == sorted(GOOD_IDS)
    assert {r["outcome"] for r in rows} == {"enrolled"}


@pytest.mark.scenario
@pytest.mark.timeout(90)
async def test_a_job_that_kills_its_worker_is_failed_after_three_starts(
    tmp_path: Path, emulator: EmulatorHandle
) -> None:
    queue, inbox = _queue(tmp_path)
    (inbox / "poison.json").write_text(json.dumps({"identity": "poison", "audios": ["real.wav"]}))
    env = worker_env(
        queue,
        emulator.base_url,
        ENROLLER_TEST_CRASH_AT="job.started@poison",
        ENROLLER_LEASE_TTL="0.5",
    )
    codes = []
    for _ in range(4):
        run = await anyio.run_process([*WORKER, "run", "--once"], env=env, check=False)
        codes.append(run.returncode)
        if job_dirs(queue):  # the next start takes the job over once the dead one's lease is stale
            await wait_for(lambda: lease_stale(queue, 0.5), 30, "the dead worker's lease stale")
    assert codes == [-signal.SIGKILL] * 3 + [1], codes
    [error_file] = (queue / "failed").glob("poison-*.error.json")
    [problem] = json.loads(error_file.read_text())["problems"]
    assert problem["reason"].startswith("crashed the worker 3 times"), problem
    assert os.listdir(queue / "active") == []


@pytest.mark.timeout(90)
async def test_a_corrupt_journal_fails_its_job_and_the_worker_goes_on(tmp_path: Path) -> None:
    queue, inbox = _queue(tmp_path)
    (inbox / "torn.json").write_text(
        json.dumps({"enrollments": [{"identity": i, "audios": [f"{i}.wav"]} for i in GOOD_IDS]})
    )
    async with running_emulator(latency_ms=100) as emulator:
        base = worker_env(queue, emulator.base_url, ENROLLER_LEASE_TTL="0.5")
        crash = {**base, "ENROLLER_TEST_CRASH_AT": "job.enrolling@torn"}
        first = await anyio.run_process([*WORKER, "run", "--once"], env=crash, check=False)
        assert first.returncode == -signal.SIGKILL
        [journal] = (queue / "active").glob("torn-*/journal.jsonl")
        lines = journal.read_bytes().splitlines(keepends=True)
        assert lines, "the killed run journaled its start"
        journal.write_bytes(b"{damaged\n" + b"".join(lines))  # damage before the last line
        (inbox / "after.json").write_text(json.dumps({"identity": "later", "audios": ["real.wav"]}))
        await wait_for(lambda: lease_stale(queue, 0.5), 30, "the killed worker's lease stale")
        second = await anyio.run_process([*WORKER, "run", "--once"], env=base, check=False)
    assert second.returncode == 1, second.stderr.decode()[-2000:]
    [error_file] = (queue / "failed").glob("torn-*.error.json")
    error = json.loads(error_file.read_text())["error"]
    assert error["exception"] == "JournalCorrupt" and error["phase"] == "resume", error
    [report] = (queue / "reports").glob("after-*.report.json")
    assert json.loads(report.read_text())["counts"]["enrolled"] == 1


@pytest.mark.timeout(60)
async def test_a_job_cancelled_by_the_end_of_the_grace_period_releases_its_lease(
    tmp_path: Path,
) -> None:
    queue, inbox = _queue(tmp_path)
    (inbox / "slow.json").write_text(json.dumps({"identity": "slow", "audios": ["real.wav"]}))
    async with running_emulator(latency_ms=3000) as emulator:
        env = worker_env(
            queue, emulator.base_url, ENROLLER_SHUTDOWN_GRACE="0.2", ENROLLER_LEASE_TTL="600"
        )
        proc = await anyio.open_process([*WORKER, "run"], env=env, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        seen = b""
        async for chunk in proc.stderr:  # wait until the job is running
            seen += chunk
            if b'"job_started"' in seen:
                break
        # ...and one of its requests is on the wire (3 s each)
        await wait_for(lambda: emulator.emulator.stats.in_flight, 30, "a request on the wire")
        proc.send_signal(signal.SIGTERM)
        async for chunk in proc.stderr:
            seen += chunk
        assert await proc.wait() == 0
    assert b'"worker_grace_expired"' in seen  # phase two really cancelled the job
    [lease_file] = (queue / "active").glob("slow-*/lease.*.json")
    assert json.loads(lease_file.read_text())["released"] is True  # taken at once, not in 600 s
