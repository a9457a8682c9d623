"""`enroller demo` (for now): start the emulator in-process and show it answering.

A later issue replaces this with a full enrollment on the embedded emulator. Until then it
proves the pieces a newcomer needs: the emulator starts, authenticates, serves the model table
and creates an identity.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import aiohttp

from emulator.config import EmulatorOptions
from emulator.server import EmulatorServer

DEMO_KEY = "demo-key"  # the seeded demo user's published API key


async def _show(session: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> None:
    async with session.request(method, url, **kw) as resp:
        body = await resp.json()
        print(f"{method} {url} → {resp.status}")
        print("  " + json.dumps(body, indent=2).replace("\n", "\n  "))


async def run_demo() -> None:
    options = EmulatorOptions(port=0, state_file=None, config=None)
    server = EmulatorServer(options)
    await server.start()
    print(f"emulator listening on {server.base_url}\n")
    try:
        headers = {"Authorization": f"Bearer {DEMO_KEY}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            base = server.base_url
            await _show(session, "GET", f"{base}/user")
            await _show(session, "GET", f"{base}/models")
            handle = f"demo-{secrets.token_hex(3)}"
            await _show(
                session,
                "POST",
                f"{base}/spaces/demo/main/identities",
                json={"handle": handle, "alias": "Demo identity"},
            )
    finally:
        await server.stop()


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print("usage: enroller demo\n\nStart the emulator in-process and show it answering.")
        return 0
    asyncio.run(run_demo())
    return 0
