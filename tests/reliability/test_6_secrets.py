"""Secrets: the API key appears in no log line, report or metric.

The sweep itself — every worker's stderr, every queue tree (reports, failures CSVs, retry
manifests, failed/ error files, journals, progress, heartbeats) and the scraped metrics, searched
for the key and for any 12-character piece of it — is the `artifacts` fixture's finaliser
(tests/reliability/conftest.py): it runs when the session ends, over what every reliability test
wrote, in any order and in any selection. This file proves that the sweep finds a planted key
and fails the session, and adds a scenario that covers what the others do not: the daemon with
/metrics and /healthz served (scraped into files), retries logged at debug level under faults,
broken files and rows, a start with a key the API refuses (the 401 path), and the refusals of
issue 21 (the key as a flag, in the API URL's user-info, as a password too long to be one),
whose output is kept as artifacts and swept at once.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import anyio
import pytest

from tests.emulator_harness import running_emulator
from tests.reliability.support import (
    MODEL,
    SECRET_KEY,
    VOICE_S,
    WINDOW,
    assert_no_leaks,
    identities,
    leaks,
    worker_env,
    write_world,
)
from tests.support import (
    WORKER,
    assert_no_crash,
    drop,
    free_port,
    job_manifest,
    make_queue,
    run_worker,
    start_worker,
    wait_for,
)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - a local test URL
        return bytes(resp.read())


def _swept(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


async def _daemon_scenario(area: Path, private: Path) -> None:
    ids = identities("secret", 6)
    queue = make_queue(area / "queue", ids, voice_s=VOICE_S)
    drop(queue, "good.json", job_manifest(ids[:4], MODEL))
    drop(queue, "rows.csv", f"identity,audio\n{ids[4]},{ids[4]}.wav\nBad Handle,x.wav\n")
    drop(queue, "broken.json", "{not json")
    port = free_port()
    async with running_emulator(fault_rate=0.2, seed=6, config=write_world(private)) as emu:
        env = worker_env(queue, emu.base_url, metrics_port=port, max_retries=10)
        log = area / "daemon.log"
        worker = await start_worker(env, log, once=False)
        try:

            def finished() -> bool:  # files appear from another process: nothing to wait on
                done = len(list((queue / "reports").glob("*.report.json")))
                failed = len(list((queue / "failed").glob("*.error.json")))
                return done == 2 and failed == 1

            await wait_for(finished, 45, "2 reports and 1 failed file", step=0.1)
            base = f"http://127.0.0.1:{port}"
            (area / "metrics.txt").write_bytes(
                await anyio.to_thread.run_sync(_get, base + "/metrics")
            )
            (area / "healthz.json").write_bytes(
                await anyio.to_thread.run_sync(_get, base + "/healthz")
            )
        finally:
            worker.terminate()
            with anyio.fail_after(30):
                await worker.wait()
        assert_no_crash(log)
    assert b"enroller" in (area / "metrics.txt").read_bytes()  # it really was the metrics page


async def _refused_key_scenario(area: Path) -> None:
    queue = make_queue(area / "refused" / "queue", ["refused-0000"], voice_s=VOICE_S)
    drop(queue, "refused.json", job_manifest(["refused-0000"], MODEL))
    async with running_emulator() as emu:  # the seeded world: it does not know SECRET_KEY
        log = area / "refused.log"
        code = await run_worker(worker_env(queue, emu.base_url), log)
    assert code == 2
    assert "401" in log.read_text() or "credentials" in log.read_text()


async def _refusals_scenario(area: Path, private: Path) -> None:
    """Each way the key could reach a command line, a URL or a refusal: exit 2, output kept."""
    key_file = private / "api_key"
    key_file.write_text(SECRET_KEY)
    key_file.chmod(0o644)  # also draws the warning, which names the file, not the key
    queue = make_queue(area / "refusals" / "queue", [], voice_s=VOICE_S)
    url = f"http://demo:{SECRET_KEY}@127.0.0.1:9/v1"
    cases = {
        "flag": (["--once", "--api-key", SECRET_KEY], {}),
        "url": (["--once"], {"api_url": url, "api_key_file": str(key_file)}),
        "config": (["--api-url", url], {}),  # `enroller config`: shown masked, exit 0
        "password": (["--once"], {"api_handle": "demo", "api_password": SECRET_KEY * 2}),
    }
    for name, (argv, extra) in cases.items():
        env = worker_env(queue, "http://127.0.0.1:9/v1", **extra)
        env.pop("ENROLLER_API_KEY")
        command = [*WORKER, "config", *argv] if name == "config" else [*WORKER, "run", *argv]
        result = await anyio.run_process(command, env=env, check=False)
        (area / f"refusal-{name}.out").write_bytes(result.stdout)
        (area / f"refusal-{name}.log").write_bytes(result.stderr)
        assert b"Traceback" not in result.stderr, name
        assert result.returncode == (0 if name == "config" else 2), (name, result.stderr)


@pytest.mark.timeout(120)
async def test_the_key_is_in_no_log_report_or_metric(
    area: Path, artifacts: Path, private: Path
) -> None:
    await _daemon_scenario(area, private)
    await _refused_key_scenario(area)
    await _refusals_scenario(area, private)
    # Its own outputs now (the session's finaliser sweeps everyone's, this one's included).
    swept = await anyio.to_thread.run_sync(_swept, area)
    assert any(p.name.endswith(".report.json") for p in swept)
    assert any(p.name.endswith(".log") for p in swept)
    assert any(p.name == "metrics.txt" for p in swept)
    assert await anyio.to_thread.run_sync(leaks, area) == []


def test_the_sweep_finds_the_key_or_any_piece_of_it(tmp_path: Path) -> None:
    (tmp_path / "queue" / "reports").mkdir(parents=True)
    (tmp_path / "clean.log").write_text('{"event": "api.retry", "key": "vpk_live_…"}\n')
    assert leaks(tmp_path) == []  # the prefix alone is not the key
    assert_no_leaks(tmp_path)
    piece = SECRET_KEY[17 : 17 + WINDOW]  # from the middle: no prefix to look for
    (tmp_path / "queue" / "reports" / "a.report.json").write_text(f'{{"x": "..{piece}.."}}')
    (tmp_path / "worker.log").write_bytes(b"Authorization: Bearer " + SECRET_KEY.encode())
    (tmp_path / f"dump-{SECRET_KEY[:WINDOW]}").mkdir()
    found = leaks(tmp_path)
    assert [line.split(":")[0] for line in found] == [
        str(tmp_path / f"dump-{SECRET_KEY[:WINDOW]}"),
        str(tmp_path / "queue" / "reports" / "a.report.json"),
        str(tmp_path / "worker.log"),
    ], found
    assert "in the name" in found[0]
    with pytest.raises(AssertionError, match=r"leaked into 3 output\(s\)"):
        assert_no_leaks(tmp_path)
    # One character short of a window is not enough to call it the key.
    (tmp_path / "short").mkdir()
    (tmp_path / "short" / "near.log").write_text(SECRET_KEY[17 : 17 + WINDOW - 1])
    assert len(leaks(tmp_path / "short")) == 0


PLANTED = """
from tests.reliability.support import SECRET_KEY


def test_writes_a_piece_of_the_key(area):
    (area / "worker.base.log").write_text("retrying with " + SECRET_KEY[9:30])
"""


@pytest.mark.timeout(120)
def test_a_leak_written_by_any_test_fails_the_session(tmp_path: Path) -> None:
    """A session whose only test passes but writes a piece of the key into its artifacts: the
    finaliser fails that session (exit 1), naming the file."""
    planted = tmp_path / "test_planted.py"
    planted.write_text(PLANTED)
    root = Path(__file__).resolve().parents[2]
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    argv += ["-p", "tests.reliability.conftest", "--rootdir", str(root), "-c"]
    argv += [str(root / "pyproject.toml"), "--basetemp", str(tmp_path / "session"), str(planted)]
    run = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=100, check=False)
    out = run.stdout + run.stderr
    assert run.returncode == 1, out[-3000:]
    assert "1 passed, 1 error" in out, out[-3000:]  # the test passed; the sweep failed it
    assert "the API key leaked into 1 output(s)" in out and "worker.base.log" in out, out[-3000:]
