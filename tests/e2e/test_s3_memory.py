"""A 200 MiB object downloads in flat memory: a fresh child's peak RSS (`ru_maxrss` from
`os.wait4`) downloading it through `S3Store` is within a few MiB of the same child downloading
1 MiB. Real SeaweedFS; `benchmarks/s3_audio.py` prints the same figures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.s3_harness import ACCESS_KEY, REGION, SECRET_KEY, S3Server, s3_server

__all__ = ["s3_server"]  # the fixture, imported for pytest

BUCKET = "memory-test"
LARGE_MIB = 200

_CHILD = """
import sys, tempfile
from pathlib import Path
from worker.objects.store import S3Store
from worker.objects.uri import S3Uri
endpoint, access, secret, region, bucket, key = sys.argv[1:7]
store = S3Store(endpoint_url=endpoint, access_key=access, secret_key=secret, region=region)
with tempfile.TemporaryDirectory() as tmp:
    print(store.download(S3Uri(bucket, key), Path(tmp), 1 << 40).size)
store.close()
"""


def peak_kib(server: S3Server, key: str) -> tuple[int, int]:
    """(bytes downloaded, the child's peak RSS in KiB)."""
    argv = [sys.executable, "-c", _CHILD, server.endpoint, ACCESS_KEY, SECRET_KEY, REGION]
    proc = subprocess.Popen([*argv, BUCKET, key], stdout=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read().decode() if proc.stdout else ""
    assert os.waitstatus_to_exitcode(status) == 0, out
    return int(out.strip()), usage.ru_maxrss


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
    small_size, small_peak = peak_kib(s3_server, "small.bin")
    large_size, large_peak = peak_kib(s3_server, "big.bin")
    assert (small_size, large_size) == (1 << 20, LARGE_MIB << 20)
    # Chunks of 1 MiB and aiohttp's read buffer: a few MiB at most, never the object.
    assert large_peak - small_peak < 16 * 1024, (small_peak, large_peak)
