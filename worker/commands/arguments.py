"""Each built-in subcommand's own arguments, its help epilog, and a plugin command's summary.

Owns: what `worker/cli.py`'s command table hands argparse for each subcommand besides the
settings flags (those come from `worker.config.groups`). Parsing only: no command runs here.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
from pathlib import Path


def args_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--once", action="store_true", help="drain the queue, then exit")


def args_paths(p: argparse.ArgumentParser, nargs: str = "+") -> None:
    p.add_argument("paths", nargs=nargs, metavar="PATH", help="manifest files or folders")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def args_submit(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help="manifest files (*.json, *.csv)")
    p.add_argument(
        "--no-validate", dest="validate", action="store_false", help="skip the local preflight"
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="refuse a file if any row has a problem (by default those rows are reported failed "
        "and the rest runs)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def args_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", metavar="JOB", help="job id, its beginning, or the manifest's name")
    p.add_argument("--json", action="store_true", help="the report's summary as JSON")


def args_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def args_config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--markdown", action="store_true", help="print the README table of every setting instead"
    )


def args_health(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no output when healthy")


def args_completion(p: argparse.ArgumentParser) -> None:
    p.add_argument("shell", choices=("bash", "zsh"), help="the shell to complete in")


COMPLETION_HELP = """\
install:
  bash: enroller completion bash > ~/.local/share/bash-completion/completions/enroller
        (bash-completion loads it in every new shell)
  zsh:  enroller completion zsh > ~/.enroller-completion.zsh
        and add to ~/.zshrc, after compinit:  source ~/.enroller-completion.zsh
  this shell only: source <(enroller completion bash)   (or zsh)
"""


def plugin_summary(target: str) -> str:
    """A plugin command's one line: the first line of its module's docstring, read without
    importing the module (the emulator's imports are not for `enroller --help`)."""
    module = target.split(":")[0]
    try:
        spec = importlib.util.find_spec(module)
        origin = spec.origin if spec is not None else None
        doc = ast.get_docstring(ast.parse(Path(origin).read_text("utf-8"))) if origin else None
    except (ImportError, OSError, SyntaxError, ValueError):
        doc = None
    first = (doc or "").strip().splitlines()[0] if doc else ""
    # "`enroller emulator`: run the local voiceprint API …" -> "run the local voiceprint API …"
    return first.split(": ", 1)[1].rstrip(".") if ": " in first else first or module


def args_migrate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="from_model", required=True, metavar="MODEL")
    p.add_argument("--to", dest="to_model", required=True, metavar="MODEL")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument(
        "--identity", dest="identities", action="append", metavar="HANDLE", help="repeatable"
    )
    who.add_argument("--all", action="store_true", help="every identity of the space")
    p.add_argument("--voiceprint", default="main", help="the handle to move (main)")
    args_json(p)
