"""The CLI's door to `enroller web`: cheap to import, so `enroller --help` and the other
commands never load aiohttp or Jinja2; the page's modules load when the command runs."""

from __future__ import annotations

import argparse

from worker.config.settings import Settings


def web_command(args: argparse.Namespace, settings: Settings) -> int:
    """`enroller web`: serve the status page until stopped (`worker.commands.web.run_web`)."""
    from worker.commands.web import run_web  # lazy: the whole point of this module

    return run_web(settings)
