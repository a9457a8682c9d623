"""`enroller web`: a read-only status page over the queue directory (issue 31).

Owns: putting the page together (the guard of `worker.commands.web_guard`, the routes of
`worker.commands.web_pages`, Jinja2 with autoescape on) and serving it until stopped, telling
its address through the queue so that `enroller status` prints it
(`worker.ops.webaddress`). It works with every worker stopped: it reads only the queue's files.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable

import aiohttp_jinja2
import jinja2
from aiohttp import web

from worker.base.exitcodes import EXIT_FATAL, EXIT_OK
from worker.commands.web_guard import (
    HERE,
    MAX_BODY,
    SETTINGS_KEY,
    TOKEN_KEY,
    WebRefused,
    check_bind,
    guard,
)
from worker.commands.web_pages import add_routes
from worker.config.settings import Settings
from worker.ops.webaddress import (
    public_url,
    remove_web_address,
    web_address_path,
    write_web_address,
)


def build_app(settings: Settings) -> web.Application:
    """The page's application over `settings.queue_dir`; `check_bind` is the caller's."""
    app = web.Application(middlewares=[guard], client_max_size=MAX_BODY)
    token = settings.web_token.get_secret_value() if settings.web_token is not None else None
    app[TOKEN_KEY] = token
    app[SETTINGS_KEY] = settings
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "web_templates"),
        autoescape=True,  # every value is escaped unless a template says otherwise (none does)
        undefined=jinja2.StrictUndefined,
    )
    add_routes(app)
    return app


async def serve(settings: Settings, ready: Callable[[str], None] | None = None) -> None:
    """Serve until cancelled, telling the address through the queue for `enroller status`."""
    check_bind(settings)
    runner = web.AppRunner(build_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.web_host, settings.web_port)
    await site.start()
    url = public_url(settings.web_host, settings.web_port)
    where = web_address_path(settings.queue_dir)
    try:
        if ready is not None:
            ready(url)
        while True:  # bounded by the process's life: cancelled on stop
            # A read-only queue: the page still works, status just cannot tell its address.
            with contextlib.suppress(OSError):
                write_web_address(where, url)
            await asyncio.sleep(settings.heartbeat_interval)
    finally:
        remove_web_address(where)
        await runner.cleanup()


def run_web(settings: Settings) -> int:
    """`enroller web`: serve until interrupted; exit 2 when refused as configured."""
    try:
        check_bind(settings)
    except WebRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FATAL

    def told(url: str) -> None:
        login = " (token required)" if settings.web_token is not None else ""
        print(f"status page on {url}{login}; Ctrl-C stops it", flush=True)

    async def until_stopped() -> None:
        task = asyncio.current_task()
        if task is not None:  # SIGTERM (a container's stop) ends it as Ctrl-C does
            with contextlib.suppress(NotImplementedError, RuntimeError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        await serve(settings, told)

    try:
        asyncio.run(until_stopped())
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    except OSError as exc:
        print(f"error: enroller web cannot listen on {settings.web_host}:"
              f"{settings.web_port}: {exc.strerror}", file=sys.stderr)  # fmt: skip
        return EXIT_FATAL
    return EXIT_OK
