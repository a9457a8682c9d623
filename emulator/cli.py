"""`enroller emulator`: run the local voiceprint API until SIGINT or SIGTERM.

Owns: the mapping of every `EmulatorOptions` field to a `--flag` (each also `EMULATOR_<NAME>`),
the one "listening on URL" line that scripts wait for, and signal handling. Everything else is in
`server.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from pydantic import ValidationError

from emulator.config import EmulatorOptions
from emulator.server import EmulatorServer

EXIT_OK = 0
EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="enroller emulator",
        description="A local voiceprint API (see api-contract.md), served under /v1.",
    )
    for name, field in EmulatorOptions.model_fields.items():
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            default=argparse.SUPPRESS,
            metavar=name.upper(),
            help=f"{field.description} (env EMULATOR_{name.upper()}; default {field.default})",
        )
    return parser


def options_from_argv(argv: list[str]) -> EmulatorOptions:
    """Flags win over EMULATOR_* environment variables, which win over the defaults."""
    args = build_parser().parse_args(argv)
    overrides: dict[str, Any] = vars(args)
    return EmulatorOptions(**overrides)


async def serve(options: EmulatorOptions, stop: asyncio.Event | None = None) -> None:
    """Serve until `stop` is set (or SIGINT/SIGTERM arrives), then shut down cleanly."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = EmulatorServer(options)
    await server.start()
    print(f"emulator listening on {server.base_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    print("emulator stopped", flush=True)


def main(argv: list[str]) -> int:
    try:
        options = options_from_argv(argv)
    except ValidationError as exc:
        print("invalid emulator configuration:", file=sys.stderr)
        for err in exc.errors(include_input=False, include_url=False):
            loc = ".".join(str(p) for p in err["loc"])
            print(
                f"  --{loc.replace('_', '-')} / EMULATOR_{loc.upper()}: {err['msg']}",
                file=sys.stderr,
            )
        return EXIT_CONFIG
    try:
        asyncio.run(serve(options))
    except OSError as exc:  # e.g. the port is taken
        print(f"emulator: cannot serve on {options.host}:{options.port}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK
