"""The `enroller` command line: parses arguments, builds `Settings` once, hands it down.

Owns: subcommand dispatch and the mapping of every `Settings` field to a `--flag`. It must never
hold business logic, and never import `emulator/`: commands that other packages provide (the
emulator, the demo) are found through the `enroller.commands` entry point group.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, entry_points, version
from typing import Any, NamedTuple

from pydantic import SecretStr, ValidationError

from worker.base.exitcodes import EXIT_FATAL, EXIT_OK
from worker.base.masking import mask_url_userinfo
from worker.commands.arguments import (
    COMPLETION_HELP,
    args_completion,
    args_config,
    args_health,
    args_json,
    args_migrate,
    args_paths,
    args_report,
    args_run,
    args_submit,
    plugin_summary,
)
from worker.commands.web_entry import web_command
from worker.config.described import key_file_warning, secret_settings
from worker.config.groups import ALL, settings_of
from worker.config.keyfile import KeyFileProblem
from worker.config.loading import (
    InvalidSettings,
    describe_invalid,
    load_settings,
    unknown_setting_warnings,
)
from worker.config.settings import Settings, env_name, flag_name

PLUGIN_GROUP = "enroller.commands"


def _flag(field_name: str) -> str:
    return flag_name(field_name)


def secret_flag_refusal(name: str) -> str:
    """Why `--<secret>` is refused, and the safe ways to give that secret instead."""
    key_file = f"{flag_name('api_key_file')} / {env_name('api_key_file')}"
    return (
        f"{flag_name(name)} is refused: a command line can be read by every user of this host "
        f"(ps, /proc/<pid>/cmdline) and stays in shell history; set {env_name(name)} in the "
        f"environment or in .env, or put the API key in a file and name it with {key_file}"
    )


class _RefuseSecret(argparse.Action):
    """A secret given as a flag: exit 2 with the safe ways, never echoing what was given."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        name = self.dest.removeprefix("refused__")
        parser.exit(EXIT_FATAL, f"enroller: {secret_flag_refusal(name)}\n")


def _add_secret_refusals(parser: argparse.ArgumentParser) -> None:
    for name in secret_settings():
        parser.add_argument(
            _flag(name),
            dest=f"refused__{name}",
            nargs="?",
            action=_RefuseSecret,
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
        )


def add_settings_flags(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    """One flag per setting; absent flags stay absent so env and .env still apply.

    `--help` shows only the settings the command uses (`names`); the others' flags are still
    accepted, unlisted, so a script that passes a whole configuration to every command keeps
    working.

    Secrets get a hidden flag that refuses them (see `secret_flag_refusal`), so a key typed
    on a command line by habit ends in a clear line instead of "unrecognized arguments: <key>".
    """
    group = parser.add_argument_group("settings (each also ENROLLER_<NAME> in env or .env)")
    secrets = secret_settings()
    shown = set(names)
    for name, field in Settings.model_fields.items():
        if name in secrets:
            continue
        kwargs: dict[str, Any] = {
            "dest": f"setting__{name}",
            "default": argparse.SUPPRESS,
            "help": field.description if name in shown else argparse.SUPPRESS,
        }
        if field.annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["metavar"] = name.upper()
        group.add_argument(_flag(name), **kwargs)
    _add_secret_refusals(parser)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Build Settings with CLI flags taking precedence over env and .env.

    Raises `InvalidSettings` (one line per problem, no values) when any source is invalid.
    """
    overrides = {
        key.removeprefix("setting__"): value
        for key, value in vars(args).items()
        if key.startswith("setting__")
    }
    return load_settings(overrides)


def masked_settings(settings: Settings) -> dict[str, Any]:
    """The effective configuration, JSON-ready, with every secret masked.

    Secrets show as the mask; every text has the user-info of any URL in it masked
    (`https://********@host/v1`), whichever setting holds it.
    """
    out: dict[str, Any] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            out[name] = "********"
        elif value is None or isinstance(value, bool | int | float):
            out[name] = value
        else:
            out[name] = mask_url_userinfo(str(value))
    out["audio_root"] = mask_url_userinfo(str(settings.resolved_audio_root))
    return out


def _print_errors(lines: Sequence[str]) -> None:
    for line in lines:
        print(f"enroller: {line}", file=sys.stderr)


# --- subcommand handlers -------------------------------------------------------------------


def _cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    if args.markdown:
        from worker.config.table import settings_markdown_table

        print(settings_markdown_table(), end="")
        return EXIT_OK
    print(json.dumps(masked_settings(settings), indent=2))
    return EXIT_OK


def _cmd_healthcheck(args: argparse.Namespace, settings: Settings) -> int:
    from worker.ops.health import run_healthcheck  # lazy: runs every few seconds in a container

    return run_healthcheck(settings, quiet=args.quiet)


def _cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    from worker.commands.validate import run_validate
    from worker.manifest.models import ManifestDefaults

    return run_validate(args.paths, ManifestDefaults.from_settings(settings), as_json=args.json)


def _cmd_plan(args: argparse.Namespace, settings: Settings) -> int:
    from worker.commands.plan import run_plan
    from worker.manifest.models import ManifestDefaults

    defaults = ManifestDefaults.from_settings(settings)
    return run_plan(args.paths, defaults, settings.rate_limit, as_json=args.json)


def _cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from worker.commands.check import run_check

    return run_check(settings, args.paths, as_json=args.json)


def _cmd_submit(args: argparse.Namespace, settings: Settings) -> int:
    from worker.commands.submit import run_submit
    from worker.manifest.models import ManifestDefaults

    defaults = ManifestDefaults.from_settings(settings)
    return run_submit(
        args.files,
        settings.queue_dir,
        defaults,
        validate=args.validate,
        as_json=args.json,
        existing=getattr(args, "setting__existing", None),  # given on this command line only
        strict=args.strict,
    )


def _cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from worker.commands.migrate import migration_document, migration_file_name, run_migrate
    from worker.manifest.models import ManifestDefaults

    doc = migration_document(
        args.from_model,
        args.to_model,
        None if args.all else args.identities,
        owner=settings.owner,
        space=settings.space,
        voiceprint=args.voiceprint,
        retire=settings.retire,
    )
    name = migration_file_name(args.from_model, args.to_model, settings.space)
    defaults = ManifestDefaults.from_settings(settings)
    return run_migrate(doc, name, settings.queue_dir, defaults, as_json=args.json)


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    import anyio
    import structlog

    from worker.base.log import configure_logging
    from worker.base.masking import url_has_userinfo
    from worker.base.memtune import cap_malloc_arenas
    from worker.config.described import secret_values
    from worker.service import run_worker

    cap_malloc_arenas()  # before any thread: each would get its own malloc arena
    configure_logging(settings.log_level, settings.log_format, secret_values(settings))
    log = structlog.get_logger("worker.cli")
    if (warning := key_file_warning(settings)) is not None:
        log.warning("api_key_file_too_open", reason=warning)
    for line in unknown_setting_warnings(os.environ):  # as a log line: collectors read JSON
        log.warning("unknown_setting", reason=line)
    if url_has_userinfo(settings.api_url):
        # aiohttp cannot send URL credentials and a Bearer token together: refuse at start.
        log.error(
            "worker_cannot_start",
            reason=f"api_url {mask_url_userinfo(settings.api_url)} holds credentials "
            f"(user:password@), which this API does not take (it authenticates by API key or "
            f"sign-in token only): remove them and set {env_name('api_key')} or "
            f"{env_name('api_key_file')}",
        )
        return EXIT_FATAL
    return anyio.run(lambda: run_worker(settings, once=args.once))


def _cmd_completion(args: argparse.Namespace, settings: Settings) -> int:
    from worker.commands.completion import command_options, completion_script

    print(completion_script(args.shell, command_options(build_parser())), end="")
    return EXIT_OK


def _cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from worker.commands.report import run_report

    return run_report(settings.queue_dir, args.job, as_json=args.json)


def _cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from worker.ops.status import run_status  # lazy: keeps `enroller --help` fast

    return run_status(settings, as_json=args.json)


class Command(NamedTuple):
    """One built-in subcommand: its one-line summary, the setting groups whose flags it takes
    (`worker.config.groups`), its handler and its own arguments. A new subcommand is one row."""

    name: str
    summary: str
    groups: tuple[str, ...]
    handler: Callable[[argparse.Namespace, Settings], int]
    arguments: Callable[[argparse.ArgumentParser], None]


# fmt: off
COMMANDS: tuple[Command, ...] = (
    Command("run", "watch the queue and enroll (--once: drain it and exit)",
            (ALL,), _cmd_run, args_run),
    Command("validate", "parse and preflight manifests and their audio; no network",
            ("manifest",), _cmd_validate, args_paths),
    Command("plan", "requests, credits, bytes and time a run will cost; no network",
            ("manifest", "rate"), _cmd_plan, args_paths),
    Command("check", "online preflight, reads only: key, spaces, models, credits vs the plan",
            ("manifest", "api"), _cmd_check, lambda p: args_paths(p, "*")),
    Command("submit", "validate manifests and drop them into the inbox safely",
            ("manifest", "queue"), _cmd_submit, args_submit),
    Command("migrate", "queue moving voiceprints to a new model, from the audio on the server",
            ("manifest", "queue"), _cmd_migrate, args_migrate),
    Command("status", "workers, API state, queue counts, active jobs with rate and ETA",
            ("queue", "health"), _cmd_status, args_json),
    Command("report", "a finished job's summary and where its files are (JOB: id or name)",
            ("queue",), _cmd_report, args_report),
    Command("web", "the read-only status page, in a browser",
            ("web",), web_command, lambda p: None),
    Command("config", "print the effective configuration, secrets masked",
            (ALL,), _cmd_config, args_config),
    Command("healthcheck", "exit non-zero when the worker is unhealthy (says when degraded)",
            ("health",), _cmd_healthcheck, args_health),
    Command("completion", "print a bash or zsh completion script (see --help to install)",
            (), _cmd_completion, args_completion),
)
# fmt: on


def _version() -> str:
    try:
        return version("voiceprint-enroller")
    except PackageNotFoundError:  # pragma: no cover - running from a tree that is not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="enroller",
        description="Enroll voiceprints from manifest files through the voiceprint API.",
        epilog="Every setting is also ENROLLER_<NAME> in the environment or in .env; "
        "`enroller COMMAND --help` lists the ones COMMAND uses.",
    )
    parser.add_argument("--version", action="version", version=f"enroller {_version()}")
    _add_secret_refusals(parser)  # before the command too: `enroller --api-key K run`
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in COMMANDS:
        sp = sub.add_parser(
            cmd.name,
            help=cmd.summary,
            description=cmd.summary,
            epilog=COMPLETION_HELP if cmd.name == "completion" else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        cmd.arguments(sp)
        sp.set_defaults(handler=cmd.handler)
        add_settings_flags(sp, settings_of(cmd.groups))
    for ep in _plugins():
        sub.add_parser(ep.name, help=plugin_summary(ep.value), add_help=False)
    return parser


def _plugins() -> list[Any]:
    builtin = {cmd.name for cmd in COMMANDS}
    return [ep for ep in entry_points(group=PLUGIN_GROUP) if ep.name not in builtin]


def _run_plugin(plugin_main: Callable[[list[str]], int], argv: list[str]) -> int:
    """A plugin command; one that builds the worker's Settings gets the same clean refusal."""
    try:
        return plugin_main(argv)
    except InvalidSettings as exc:
        _print_errors(exc.lines)
    except KeyFileProblem as exc:
        _print_errors([str(exc)])
    except ValidationError as exc:
        if exc.title != Settings.__name__:
            raise
        _print_errors(describe_invalid(exc))
    return EXIT_FATAL


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Plugin commands parse their own arguments.
    if argv and not argv[0].startswith("-"):
        for ep in _plugins():
            if ep.name == argv[0]:
                return _run_plugin(ep.load(), argv[1:])

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
    except InvalidSettings as exc:
        _print_errors(exc.lines)
        return EXIT_FATAL
    quiet = args.command == "run" or getattr(args, "quiet", False)  # run logs it itself
    if not quiet and (warning := key_file_warning(settings)) is not None:
        print(f"enroller: warning: {warning}", file=sys.stderr)
    if not quiet:
        for line in unknown_setting_warnings(os.environ):
            print(f"enroller: warning: {line}", file=sys.stderr)
    return int(args.handler(args, settings))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
