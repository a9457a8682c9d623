"""A 200 MiB object downloads in flat memory: in a fresh child whose S3 client is made, the
peak RSS during the download (VmHWM reset by /proc/self/clear_refs) grows by no more than a
few MiB over the same child downloading 1 MiB. Real SeaweedFS; `benchmarks/s3_audio.py`
prints the same figures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.s3_harness import ACCESS_KEY, REGION, SECRET_KEY, S3Server

BUCKET = "memory-test"
LARGE_MIB = 200

_CHILD = """
import sys, tempfile, time
from pathlib import Path
from worker.objects.store import S3Store
from worker.objects.uri import S3Uri


def status_kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])


endpoint, access, secret, region, bucket, key = sys.argv[1:7]
store = S3Store(endpoint_url=endpoint, access_key=access, secret_key=secret, region=region)
uri = S3Uri(bucket, key)
store.head(uri)  # the client made and warm: its start-up is not the download's
Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS now (Linux)
before = status_kib("VmHWM")
with tempfile.TemporaryDirectory() as tmp:
    started = time.monotonic()
    got = store.download(uri, Path(tmp), 1 << 40)
    took = time.monotonic() - started
    print(got.size, took, before, status_kib("VmHWM"))
store.close()
"""


def growth_kib(server: S3Server, key: str) -> tuple[int, int]:
    """(bytes downloaded, the child's peak RSS during the download less its RSS before, KiB)."""
    argv = [sys.executable, "-c", _CHILD, server.endpoint, ACCESS_KEY, SECRET_KEY, REGION]
    proc = subprocess.Popen([*argv, BUCKET, key], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    with proc.stdout:
        out = proc.stdout.read().decode().split()  # to its end: the child has finished
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    assert proc.returncode == 0 and out, (status, usage)
    return int(out[0]), int(out[3]) - int(out[2])


@pytest.mark.scenario
@pytest.mark.timeout(180)
def test_a_200_mib_object_downloads_in_flat_memory(s3_server: S3Server, tmp_path: Path) -> None:
    s3_server.bucket(BUCKET)
    big = tmp_path / "big.bin"
    with big.open("wb") as fh:
        for _ in range(LARGE_MIB):
            fh.write(os.urandom(1 << 20))
    s3_server.put(BUCKET, "big.bin", big)
    big.unlink()
    s3_server.put(BUCKET, "small.bin", os.urandom(1 << 20))
    small_size, small_growth = growth_kib(s3_server, "small.bin")
    large_size, large_growth = growth_kib(s3_server, "big.bin")
    assert (small_size, large_size) == (1 << 20, LARGE_MIB << 20)
    # Chunks of 1 MiB and aiohttp's read buffer: a few MiB at most, never the object.
    assert large_growth - small_growth < 16 * 1024, (small_growth, large_growth)
