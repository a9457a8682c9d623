"""The `enroller` command line: parses arguments, builds `Settings` once, hands it down.

Owns: subcommand dispatch and the mapping of every `Settings` field to a `--flag`. It must never
hold business logic, and never import `emulator/`: commands that other packages provide (the
emulator, the demo) are found through the `enroller.commands` entry point group.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any

from pydantic import SecretStr, ValidationError

from worker.settings import Settings

PLUGIN_GROUP = "enroller.commands"

EXIT_OK = 0
EXIT_FAILURES = 1
EXIT_FATAL = 2


def _flag(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per Settings field; absent flags stay absent so env and .env still apply."""
    group = parser.add_argument_group("settings (each also ENROLLER_<NAME> in env or .env)")
    for name, field in Settings.model_fields.items():
        kwargs: dict[str, Any] = {
            "dest": f"setting__{name}",
            "default": argparse.SUPPRESS,
            "help": field.description,
        }
        if field.annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["metavar"] = name.upper()
        group.add_argument(_flag(name), **kwargs)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Build Settings with CLI flags taking precedence over env and .env."""
    overrides = {
        key.removeprefix("setting__"): value
        for key, value in vars(args).items()
        if key.startswith("setting__")
    }
    return Settings(**overrides)


def describe_settings_error(exc: ValidationError) -> str:
    """A settings error a person can act on, with no input values echoed (they may be secrets)."""
    lines = ["invalid configuration:"]
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(part) for part in err["loc"]) or "settings"
        env = f"ENROLLER_{loc.upper()}" if loc in Settings.model_fields else ""
        where = f"{_flag(loc)} / {env}" if env else loc
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)


def masked_settings(settings: Settings) -> dict[str, Any]:
    """The effective configuration, JSON-ready, with every secret masked."""
    out: dict[str, Any] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            out[name] = "********"
        elif value is None or isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            out[name] = str(value)
    out["audio_root"] = str(settings.resolved_audio_root)
    return out


# --- subcommand handlers -------------------------------------------------------------------


def _cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    if args.markdown:
        from worker.settings import settings_markdown_table

        print(settings_markdown_table(), end="")
        return EXIT_OK
    print(json.dumps(masked_settings(settings), indent=2))
    return EXIT_OK


def _cmd_healthcheck(args: argparse.Namespace, settings: Settings) -> int:
    from worker.health import run_healthcheck  # lazy: runs every few seconds in a container

    return run_healthcheck(settings, quiet=args.quiet)


def _cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    from worker.manifest import ManifestDefaults  # lazy: keeps `enroller --help` fast
    from worker.validate import run_validate

    return run_validate(args.paths, ManifestDefaults.from_settings(settings), as_json=args.json)


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    import anyio

    from worker.log import configure_logging
    from worker.service import run_worker

    secrets = [s.get_secret_value() for s in (settings.api_key, settings.api_password) if s]
    configure_logging(settings.log_level, settings.log_format, secrets)
    return anyio.run(lambda: run_worker(settings, once=args.once))


def _cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from worker.status import run_status  # lazy: keeps `enroller --help` fast

    return run_status(settings, as_json=args.json)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="enroller",
        description="Enroll voiceprints from manifest files through the voiceprint API.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="watch the queue and enroll (daemon)")
    run.add_argument("--once", action="store_true", help="drain the queue, then exit")
    run.set_defaults(handler=_cmd_run)

    validate = sub.add_parser("validate", help="parse and preflight manifests; no network")
    validate.add_argument("paths", nargs="+", metavar="PATH", help="manifest files or folders")
    validate.add_argument("--json", action="store_true", help="machine-readable output")
    validate.set_defaults(handler=_cmd_validate)

    status = sub.add_parser("status", help="queue counts and active jobs")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_cmd_status)

    config = sub.add_parser("config", help="print the effective configuration, secrets masked")
    config.add_argument(
        "--markdown", action="store_true", help="print the README table of every setting instead"
    )
    config.set_defaults(handler=_cmd_config)

    health = sub.add_parser("healthcheck", help="exit non-zero when the worker is unhealthy")
    health.add_argument("--quiet", action="store_true", help="no output when healthy")
    health.set_defaults(handler=_cmd_healthcheck)

    for sp in (run, validate, status, config, health):
        add_settings_flags(sp)

    for ep in _plugins():
        sub.add_parser(ep.name, help=f"(from {ep.value.split(':')[0]})", add_help=False)
    return parser


def _plugins() -> list[Any]:
    builtin = {"run", "validate", "status", "config", "healthcheck"}
    return [ep for ep in entry_points(group=PLUGIN_GROUP) if ep.name not in builtin]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Plugin commands parse their own arguments.
    if argv and not argv[0].startswith("-"):
        for ep in _plugins():
            if ep.name == argv[0]:
                plugin_main: Callable[[list[str]], int] = ep.load()
                return plugin_main(argv[1:])

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        print(describe_settings_error(exc), file=sys.stderr)
        return EXIT_FATAL
    return int(args.handler(args, settings))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
