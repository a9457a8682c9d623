"""Issue 30 point 7: `enroller emulator` tells a new user what to put in their settings."""

from __future__ import annotations

import signal
import sys

import anyio
import pytest


@pytest.mark.timeout(60)
async def test_the_emulator_prints_its_keys_users_orgs_and_spaces_on_start() -> None:
    argv = [sys.executable, "-m", "worker", "emulator", "--port", "0"]
    async with await anyio.open_process(argv) as proc:
        assert proc.stdout is not None
        text = b""
        with anyio.fail_after(30):
            while text.count(b"\n") < 5:
                text += await proc.stdout.receive()
        proc.send_signal(signal.SIGTERM)
        await proc.wait()
    lines = text.decode().splitlines()[:5]
    url = lines[0].removeprefix("emulator listening on ")
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
    assert lines[1:] == [
        "  user demo: API key demo-key, orgs: acme",
        "  user other: API key other-key",
        "  spaces (owner/space): demo/main, acme/onboarding, other/private",
        f"  a worker against it: ENROLLER_API_URL={url} ENROLLER_API_KEY=demo-key "
        "ENROLLER_OWNER=demo ENROLLER_SPACE=main",
    ]
