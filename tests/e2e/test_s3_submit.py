"""`enroller submit s3://bucket/manifest.json`: a manifest fetched into the inbox the safe way,
by the CLI as users run it (AWS_* variables only), against a real S3 server (SeaweedFS)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.s3_harness import SECRET_KEY, S3Server
from tests.support import WORKER
from worker.queue.rules import job_id_for

BUCKET = "manifests-e2e"


def submit(server: S3Server, queue: Path, *sources: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENROLLER_", "AWS_"))}
    env.update(server.env(), ENROLLER_QUEUE_DIR=str(queue), ENROLLER_OWNER="demo")
    env["ENROLLER_SPACE"] = "main"
    return subprocess.run(
        [*WORKER, "submit", "--json", *sources],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_submit_fetches_a_manifest_from_s3_into_the_inbox(
    s3_server: S3Server, tmp_path: Path
) -> None:
    s3_server.bucket(BUCKET)
    document = {"enrollments": [{"identity": "c1", "audios": [f"s3://{BUCKET}/a/c1.wav"]}]}
    body = json.dumps(document).encode()
    s3_server.put(BUCKET, "nightly/tonight.json", body)
    queue = tmp_path / "queue"
    queue.mkdir()
    done = submit(s3_server, queue, f"s3://{BUCKET}/nightly/tonight.json")
    assert done.returncode == 0, done.stdout + done.stderr
    [item] = json.loads(done.stdout)["submitted"]
    inbox = queue / "inbox"
    assert sorted(p.name for p in inbox.iterdir()) == ["tonight.json"]  # no temp name left
    assert (inbox / "tonight.json").read_bytes() == body
    assert item["job_id"] == job_id_for("tonight.json", item["sha256"])


def test_submit_of_a_missing_or_denied_manifest_says_why(
    s3_server: S3Server, tmp_path: Path
) -> None:
    s3_server.bucket(BUCKET)
    queue = tmp_path / "queue"
    queue.mkdir()
    done = submit(s3_server, queue, f"s3://{BUCKET}/nightly/nope.json", "s3://no-bucket-x/a.csv")
    assert done.returncode == 1
    reasons = [p["reason"] for p in json.loads(done.stdout)["problems"]]
    assert reasons == [
        f"no such object: nightly/nope.json in bucket {BUCKET}",
        "no such bucket: no-bucket-x",
    ]
    assert not [p for p in (queue / "inbox").iterdir()]  # nothing published, nothing left
    assert SECRET_KEY not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
