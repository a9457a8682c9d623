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
from typing import Any, Literal, get_args, get_origin

from pydantic import ValidationError

from emulator.config import EmulatorOptions, WorldConfig, load_world
from emulator.server import EmulatorServer

EXIT_OK = 0
EXIT_CONFIG = 2


MODES = """\
modes (all off by default; combine freely):
  rate limit     --rate-limit R --burst B: 429 + Retry-After per token beyond R requests/s;
                 --retry-after-format seconds|http-date says how Retry-After is written.
  credits        --credits N (or per owner in --config): computes beyond N answer
                 429 "Not enough credits" without Retry-After.
  async files    --file-delay-ms N: a received file (raw upload or inline base64) reads
                 avaitingFile for N ms before available/notAvailable; adding it to a
                 voiceprint meanwhile answers 409 "still being processed".
  async compute  --compute-delay-ms N: compute answers 200 with the voiceprint still
                 computable; it reads computed, with its usage record, N ms later; computing
                 again or changing its audios meanwhile answers 409 "being computed".
  faults         --fault-rate F --seed S: that fraction of requests answers 500/503 or
                 drops the connection (a write may fail after its effect); reproducible.
  latency        --latency-ms N: every API answer is delayed N ms.
  persistence    --state-file PATH: the world survives a restart (atomic writes).
  lifecycle      --no-voiceprint-rename, --no-voiceprint-delete: PATCH or DELETE of a
                 voiceprint answers 405 (with Allow), as a service without the route would.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="enroller emulator",
        description="A local voiceprint API (the contract: docs/api-contract.md in the "
        "repository), served under /v1. On start it prints its users' API keys and its spaces.",
        epilog=MODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for name, field in EmulatorOptions.model_fields.items():
        if field.annotation is bool:  # a switch: present means on (env: EMULATOR_<NAME>=1)
            parser.add_argument(
                "--" + name.replace("_", "-"),
                dest=name,
                default=argparse.SUPPRESS,
                action="store_const",
                const=True,
                help=f"{field.description} (env EMULATOR_{name.upper()}=1; default off)",
            )
            continue
        choices = get_args(field.annotation) if get_origin(field.annotation) is Literal else None
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            default=argparse.SUPPRESS,
            metavar="|".join(choices) if choices else name.upper(),
            choices=choices,
            help=f"{field.description} (env EMULATOR_{name.upper()}; default {field.default})",
        )
    return parser


def options_from_argv(argv: list[str]) -> EmulatorOptions:
    """Flags win over EMULATOR_* environment variables, which win over the defaults."""
    args = build_parser().parse_args(argv)
    overrides: dict[str, Any] = vars(args)
    return EmulatorOptions(**overrides)


def welcome_lines(world: WorldConfig, base_url: str) -> list[str]:
    """Who can use this emulator and where: each user's key and orgs, the spaces, and the
    settings a worker needs against it, so a first run needs no document."""
    lines = []
    for user in world.users:
        keys = ", ".join(user.api_keys) or "none (sign in with the password)"
        orgs = f", orgs: {', '.join(user.orgs)}" if user.orgs else ""
        lines.append(f"  user {user.handle}: API key {keys}{orgs}")
    spaces = ", ".join(f"{s.owner}/{s.handle}" for s in world.spaces) or "none"
    lines.append(f"  spaces (owner/space): {spaces}")
    first = next((u for u in world.users if u.api_keys), None)
    space = next(
        (s for s in world.spaces if first and s.owner in [first.handle, *first.orgs]), None
    )
    if first is not None and space is not None:
        lines.append(
            f"  a worker against it: ENROLLER_API_URL={base_url} "
            f"ENROLLER_API_KEY={first.api_keys[0]} ENROLLER_OWNER={space.owner} "
            f"ENROLLER_SPACE={space.handle}"
        )
    return lines


async def serve(options: EmulatorOptions, stop: asyncio.Event | None = None) -> None:
    """Serve until `stop` is set (or SIGINT/SIGTERM arrives), then shut down cleanly."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = EmulatorServer(options)
    await server.start()
    print(f"emulator listening on {server.base_url}", flush=True)
    for line in welcome_lines(load_world(options.config), server.base_url):
        print(line, flush=True)
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
