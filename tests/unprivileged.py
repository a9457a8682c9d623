"""Permission tests that hold under root too: re-run the test as an ordinary user.

Root reads and writes whatever the mode bits say (CAP_DAC_OVERRIDE), so a `chmod 0` test run
as root proves nothing, and CI runs as root. `unshare --user --map-user=1000` starts a new user
namespace in which this process is uid 1000 with no capabilities over the files it owns
outside: the mode bits then bind it like any user. Files created there belong to root outside,
and root (uid 0 outside) is that user inside, so the test's tmp_path stays reachable.

    def test_x(tmp_path, request):
        if rerun_unprivileged(request):
            return  # root: the same test just passed as uid 1000 in a user namespace
        ...  # the real test, run by a user that permissions apply to
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

_INNER = "TESTS_UNPRIVILEGED_RERUN"  # no ENROLLER_ prefix: the conftest keeps it
UID = 1000


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--user", f"--map-user={UID}", f"--map-group={UID}", "true"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def rerun_unprivileged(request: pytest.FixtureRequest) -> bool:
    """Under root, run this test again as uid 1000 and assert it passed; True if it did so.

    Under any other uid (a developer's laptop) return False at once: the caller runs the test
    itself. The inner run must see a uid other than 0, or it fails rather than pass vacuously.
    """
    if os.environ.get(_INNER) == "1":
        assert os.geteuid() != 0, "the unprivileged re-run still has uid 0"
        return False
    if os.geteuid() != 0:
        return False
    if not _unshare_works():
        pytest.skip("running as root: permission tests need `unshare --user` (util-linux)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env[_INNER] = "1"
    argv = [
        "unshare",
        "--user",
        f"--map-user={UID}",
        f"--map-group={UID}",
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        request.node.nodeid,
    ]
    inner = subprocess.run(
        argv,
        cwd=request.config.rootpath,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = inner.stdout + inner.stderr
    assert inner.returncode == 0 and re.search(r"\b1 passed\b", output), output[-3000:]
    return True
