"""The README's container block, acted out in a real Docker engine with the project's own files.

A fresh copy of the working tree (what a clone holds) is built and brought up with its own
docker-compose.yml, under a project name of its own and on free host ports, then: `samples`
writes the audio; `up -d`; the examples go into the inbox by `enroller submit` in the worker
container, as the README does (a later manifest is dropped the Maildir way by hand); each
becomes a report whose enrollments are all `enrolled`; the worker turns `healthy` by the
image's own HEALTHCHECK, runs as a non-root uid on a read-only root filesystem, logs JSON lines
and serves /metrics on the published port; `stop` in the middle of a job exits 0 before
Compose's stop_grace_period would SIGKILL it, and leaves a journal that reads back whole, from
which `start` finishes the job without enrolling anything twice; `down -v` leaves nothing
behind. And `enroller demo` runs inside the image.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.audiogen import write_audio
from tests.container.engine import (
    HOST_UID,
    IMAGE,
    Compose,
    engine_version,
    fresh_checkout,
    ok,
    require_engine_or_skip,
    run,
)
from tests.support import drop, free_port, wait_until
from worker.journal.index import JournalIndex
from worker.journal.records import (
    EnrollmentOutcome,
    JobStarted,
    JournalRecord,
    JournalState,
    parse_record,
    read_lines,
)
from worker.queue.paths import JOURNAL_NAME

require_engine_or_skip()
pytestmark = [pytest.mark.container, pytest.mark.timeout(1500)]

# Enough enrollments that the job cannot end within the worker's 20 s shutdown grace: at the
# default 20 requests/s and at least 3 requests each, 200 need 30 s or more on any machine.
BULK = 200


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 (our own loopback port)
        assert resp.status == 200, url
        return bytes(resp.read())


def reports(jobs: Path) -> dict[str, dict[str, Any]]:
    """manifest name → its report (only complete ones: reports are written by rename)."""
    out = {}
    for path in sorted((jobs / "reports").glob("*.report.json")):
        doc = json.loads(path.read_text())
        out[doc["manifest"]] = doc
    return out


def outcomes(report: dict[str, Any]) -> set[str]:
    return {row["outcome"] for row in report["enrollments"]}


def worker_log(compose: Compose) -> list[dict[str, Any]]:
    """The worker container's log, every line a JSON object (a line that is not fails here)."""
    done = run(["docker", "logs", compose.container("worker")], timeout=60)
    text = done.stdout + done.stderr
    (compose.folder / "worker.base.log").write_text(text)  # kept with the test's tmp folder
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def stage(name: str, started: float) -> None:
    print(f"[container] {name}: {time.monotonic() - started:.1f} s")


def read_records(path: Path) -> list[JournalRecord]:
    """Every record, read as the index reads them (`read_lines`, then `parse_record`)."""
    return [parse_record(line, path, number) for _, line, number in read_lines(path)]


def load_state(path: Path) -> JournalState:
    """The journal replayed as a resumed job replays it (`JournalIndex.load` with a state)."""
    state = JournalState()
    with tempfile.TemporaryDirectory() as folder, JournalIndex(path, Path(folder)) as index:
        index.load(state)
    return state


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compose]:
    """A fresh checkout, its image built; brought down with `down -v` whatever happens."""
    folder = fresh_checkout(tmp_path_factory.mktemp("clone") / "voiceprint-enroller")
    compose = Compose(
        folder,
        project=f"vpe-test-{os.getpid()}",
        env={"HOST_EMULATOR_PORT": str(free_port()), "HOST_METRICS_PORT": str(free_port())},
    )
    print(f"[container] engine {engine_version()}; {compose.version}")
    started = time.monotonic()
    ok(compose("build", timeout=1800))
    stage("compose build", started)
    try:
        yield compose
    finally:
        down = compose("down", "-v", "--remove-orphans", timeout=180)
        assert down.returncode == 0, down.stdout + down.stderr


def test_the_readme_container_block(stack: Compose) -> None:
    compose, jobs = stack, stack.folder / "jobs"
    examples = sorted((stack.folder / "jobs" / "examples").glob("*.json"))
    examples += sorted((stack.folder / "jobs" / "examples").glob("*.csv"))
    emulator_url = f"http://127.0.0.1:{compose.env['HOST_EMULATOR_PORT']}"
    metrics_url = f"http://127.0.0.1:{compose.env['HOST_METRICS_PORT']}/metrics"
    t0 = time.monotonic()

    # docker compose run --rm samples
    ok(compose("run", "--rm", "samples", timeout=300))
    audio = sorted(p for p in (jobs / "audio").rglob("*") if p.is_file())
    assert audio and all(p.stat().st_uid == HOST_UID for p in audio), "samples wrote no audio"
    stage("samples", t0)

    # docker compose up -d; then the examples, the Maildir way
    ok(compose("up", "-d", timeout=300))
    stage("up -d", t0)
    # the README's way: `enroller submit` validates each and puts it into inbox/ (dot-name, rename)
    submitted = compose("exec", "-T", "worker", "enroller", "submit",
                        *(f"/jobs/examples/{e.name}" for e in examples))  # fmt: skip
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    done = wait_until(
        lambda: len(r := reports(jobs)) == len(examples) and r,
        seconds=180,
        what=f"a report for each of {[e.name for e in examples]}",
        step=1.0,
    )
    stage("example reports", t0)
    for name, report in done.items():
        assert outcomes(report) == {"enrolled"}, (name, report["counts"])

    # healthy by the image's own HEALTHCHECK (compose sets none for the worker)
    worker = compose.inspect("worker")
    assert worker["Config"]["Healthcheck"]["Test"] == [
        "CMD", "enroller", "healthcheck", "--quiet"
    ]  # fmt: skip
    wait_until(
        lambda: compose.inspect("worker")["State"]["Health"]["Status"] == "healthy",
        seconds=120,
        what="the worker container to turn healthy",
        step=1.0,
    )
    stage("healthy", t0)

    # a non-root uid, a read-only root filesystem
    uid = ok(compose("exec", "-T", "worker", "id", "-u")).strip()
    assert uid == str(HOST_UID) and uid != "0"
    assert worker["HostConfig"]["ReadonlyRootfs"] is True
    probe = compose("exec", "-T", "worker", "touch", "/var/tmp/written")  # world-writable dir
    assert probe.returncode != 0 and "Read-only file system" in probe.stderr
    # /tmp alone is writable, a tmpfs: the journal index lives there (TMPDIR, local disk)
    assert compose("exec", "-T", "worker", "touch", "/tmp/written").returncode == 0

    # JSON logs
    names = {e["event"] for e in worker_log(compose)}
    assert {"worker_started", "metrics_listening", "job_started"} <= names, names

    # /metrics on the published port, counting what the reports say
    enrolled = sum(r["counts"]["enrolled"] for r in done.values())
    families = {f.name: f for f in text_string_to_metric_families(http_get(metrics_url).decode())}
    by_outcome = {s.labels["outcome"]: s.value for s in families["enroller_enrollments"].samples}
    assert by_outcome["enrolled"] == enrolled

    # stop in the middle of a job: exit 0 within the grace period, the journal whole
    for n in range(BULK):
        write_audio(
            jobs / "audio" / "bulk" / f"bulk-{n:03d}.wav", voice_s=5 + n / 50, samplerate=8000
        )
    for path in [jobs / "audio" / "bulk", *(jobs / "audio" / "bulk").iterdir()]:
        os.chown(path, HOST_UID, HOST_UID)
    bulk = {
        "owner": "acme",
        "space": "onboarding",
        "model": "phone/v1",
        "enrollments": [
            {"identity": f"bulk-{n:03d}", "audios": [f"bulk/bulk-{n:03d}.wav"]} for n in range(BULK)
        ],
    }
    drop(jobs, "bulk.json", json.dumps(bulk).encode(), owner=HOST_UID)

    def under_way() -> Path | None:
        for journal in (jobs / "active").glob(f"*/{JOURNAL_NAME}"):
            if sum(1 for _ in read_records(journal)) > 3:
                return journal
        return None

    journal = wait_until(under_way, seconds=120, what="the bulk job's journal", step=0.2)
    stage("bulk job under way", t0)
    grace = float(yaml.safe_load((stack.folder / "docker-compose.yml").read_text())
                  ["x-worker-env"]["ENROLLER_SHUTDOWN_GRACE"])  # fmt: skip
    asked = time.monotonic()
    ok(compose("stop", "worker", timeout=120))
    stopped_after = time.monotonic() - asked
    stage("stop", t0)
    state = compose.inspect("worker")["State"]
    assert state["ExitCode"] == 0 and not state["OOMKilled"], state  # 137 would be SIGKILL
    assert "bulk.json" not in reports(jobs), "the job ended before the stop: make BULK larger"
    memory = load_state(journal)  # reads back whole: a damaged line raises JournalCorrupt
    assert isinstance(memory.started, JobStarted) and not memory.finished
    done = {r.key for r in read_records(journal) if isinstance(r, EnrollmentOutcome)}
    assert len(done) < BULK
    # The worker said it was asked to stop and that it stopped. (With every enrollment of the
    # job in flight, the grace may run out first: then phase two cancels them, which the
    # journal makes resumable; the restart below proves it.)
    said = [e["event"] for e in worker_log(compose)]
    stopping = said.index("worker_stopping")
    assert "worker_stopped" in said[stopping:], said[stopping:]
    assert "worker_stopping_now" not in said, "a second signal: docker gave up waiting"

    # start again: the job resumes from the journal and ends; nothing is computed twice
    ok(compose("start", "worker", timeout=120))
    final = wait_until(
        lambda: reports(jobs).get("bulk.json"), seconds=240, what="bulk report", step=1.0
    )
    stage("bulk report after restart", t0)
    assert outcomes(final) == {"enrolled"}, final["counts"]
    assert final["counts"]["enrolled"] == BULK
    assert "worker_started" in {e["event"] for e in worker_log(compose)}  # still JSON, kept
    stats = json.loads(http_get(f"{emulator_url}/_emulator/stats"))
    assert stats["created"]["computes"] == enrolled + BULK, stats["created"]

    # docker compose down -v: nothing of the project is left
    ok(compose("down", "-v", timeout=180))
    assert compose.project_containers() == []
    stage("down -v", t0)
    print(f"[container] worker stopped {stopped_after:.1f} s after `stop` (grace {grace:.0f} s)")


def test_enroller_demo_runs_inside_the_image(stack: Compose) -> None:
    done = run(["docker", "run", "--rm", IMAGE, "enroller", "demo"], timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "with-mistakes.csv" in done.stdout and 'identity "Cust 7"' in done.stdout
    for manifest in ("batch.csv", "nightly-job.json", "single.json"):
        assert manifest in done.stdout, done.stdout
