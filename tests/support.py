"""What tests share: queue directories, Maildir drops, free ports, worker processes, waits.

One home for each helper (issue 26): a test that needs a queue, a port or a wait imports it
from here, and where tests need something slightly different the helper takes that difference
as a parameter, so the copies cannot drift apart. Watching a running worker's files (journals,
leases, reports) is `tests/jobwatch.py`; the reliability suite's world (its secret key) is
`tests/reliability/support.py`, built on this.

Waits are bounded polls of something another process provably did (a file, a log line, a
request the emulator logged, a counter): the bound catches a hang and asserts nothing about
speed, so a loaded machine only makes a test slower, never wrong.
"""

from __future__ import annotations

import inspect
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from tests.audiogen import write_audio
from worker.api.client import ApiClient
from worker.config.settings import Settings
from worker.enrollment.view import MAX_ATTEMPTS_PER_STEP
from worker.job.seams import JobSeams
from worker.queue.jobqueue import JobQueue
from worker.service import Service

# ---------------------------------------------------------------------------------- ports


def free_port() -> int:
    """A free TCP port on the loopback, for a server a test starts (or a container publishes)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------- worker processes

WORKER = [sys.executable, "-m", "worker"]


def worker_env(queue: Path, base_url: str, **extra: str) -> dict[str, str]:
    """The environment of a worker on `queue` against the emulator at `base_url`: nothing of the
    caller's ENROLLER_* settings; `extra` (ENROLLER_…=…) goes over the defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENROLLER_")}
    env.update(
        ENROLLER_API_URL=base_url,
        ENROLLER_API_KEY="demo-key",
        ENROLLER_OWNER="demo",
        ENROLLER_SPACE="main",
        ENROLLER_QUEUE_DIR=str(queue),
        ENROLLER_MIN_AGE="0",
        ENROLLER_LOG_FORMAT="json",
    )
    env.update(extra)
    return env


async def start_worker(env: dict[str, str], log: Path, *, once: bool = True) -> anyio.abc.Process:
    """`enroller run` (`--once` unless told) as a child; its stderr is appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as err:
        return await anyio.open_process(
            [*WORKER, "run", *(["--once"] if once else [])],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=log.parent,
        )


def assert_no_crash(log: Path) -> None:
    """A worker's log (its stderr) holds no traceback: whatever went wrong, it was handled."""
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]


async def run_worker(env: dict[str, str], log: Path) -> int:
    """Run `enroller run --once` to its exit (the test's timeout bounds it); the exit code."""
    proc = await start_worker(env, log)
    return await proc.wait()


# ------------------------------------------------------------------- the worker in-process


def make_settings(queue: Path, base_url: str, **kw: Any) -> Settings:
    """Settings of an in-process worker on `queue` against the emulator at `base_url`."""
    values: dict[str, Any] = dict(
        api_url=base_url,
        api_key="demo-key",
        owner="demo",
        space="main",
        queue_dir=queue,
        min_age=0,
        rate_limit=500,
        burst=20,
        lease_ttl=5,
        shutdown_grace=2,
    )
    values.update(kw)
    return Settings(**values)


async def run_once(
    settings: Settings, queue: JobQueue | None = None, seams: JobSeams | None = None
) -> int:
    """`enroller run --once` in this process, with the test's own `queue` and jobs' `seams`
    (disk writes, timings, work) when given."""
    async with ApiClient.from_settings(settings) as client:
        return await Service(settings, client, queue, seams=seams).run(once=True)


def report_of(queue: Path, stem: str) -> dict[str, Any]:
    """The one report of the job whose manifest was named `<stem>.*`."""
    [path] = (queue / "reports").glob(f"{stem}-*.report.json")
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------------- queues

QUEUE_FOLDERS = ("inbox", "active", "done", "failed", "reports")


def make_queue(
    root: Path,
    identities: Iterable[str] = (),
    *,
    voice_s: float = 5.0,
    step_s: float = 0.001,
    folders: Iterable[str] = ("inbox",),
) -> Path:
    """A queue directory on `root` whose audio root holds `<identity>.wav` for each identity.

    The n-th file has `voice_s + n * step_s` seconds of voice: with a step, every file has its
    own content (the worker tells audios apart by their sha256 alias); `step_s=0` makes them
    all the same audio. `folders` are created (empty) too.
    """
    for n, name in enumerate(identities):
        write_audio(root / "audio" / f"{name}.wav", voice_s=voice_s + n * step_s, samplerate=8000)
    for folder in folders:
        (root / folder).mkdir(parents=True, exist_ok=True)
    return root


# JobQueue's seams (constructor arguments), told apart from the settings a test passes.
QUEUE_SEAMS = ("host", "crash_hook", "hash_file", "on_scan", "write_lease")


def make_job_queue(
    root: Path,
    clock: Callable[[], float] | None = None,
    *,
    monotonic: Callable[[], float] | None = None,
    **options: Any,
) -> JobQueue:
    """A `JobQueue` set up on `root` (min_age 0, lease_ttl 0.5 unless `options` say otherwise).

    With `clock` (e.g. a `FakeClock`), leases and min_age follow that clock, not the wall; with
    `monotonic`, so does the queue's own sense of elapsed time (how long a lease looked the same).
    `options` are settings, or the queue's seams (`QUEUE_SEAMS`: host, crash_hook, …).
    """
    seams = {name: options.pop(name) for name in QUEUE_SEAMS if name in options}
    unknown = set(options) - set(Settings.model_fields)
    assert not unknown, f"not settings: {sorted(unknown)}"  # Settings would ignore a typo
    values: dict[str, Any] = {"queue_dir": root, "min_age": 0.0, "lease_ttl": 0.5}
    values.update(options)
    clocks = {"clock": clock, "monotonic": monotonic}
    clocks = {k: v for k, v in clocks.items() if v is not None}
    queue = JobQueue(Settings(**values), **clocks, **seams)
    queue.setup()
    return queue


MODEL = "phone/v1"  # the emulator's telephone model, which the generated 8 kHz audio fits


def job_manifest(identities: Iterable[str], model: str | None = None) -> dict[str, Any]:
    """A JSON job enrolling each identity from `<identity>.wav` (with `model` when given)."""
    rows = [{"identity": i, "audios": [f"{i}.wav"]} for i in identities]
    return {"enrollments": rows} if model is None else {"model": model, "enrollments": rows}


EMPTY_JOB = '{"enrollments": []}'


def drop(
    queue: Path | JobQueue,
    name: str,
    content: object = EMPTY_JOB,
    *,
    maildir: bool = True,
    owner: int | None = None,
) -> Path:
    """Put `content` (bytes, text, or a document written as JSON) in the inbox as `name`.

    `maildir` (the producers' contract): written under a dot-name, then renamed into place, so
    a reader never sees it half-written; `maildir=False` writes it in place (a new file, or an
    in-place rewrite of an existing one). `owner` (a uid) is given to the file before it shows.
    """
    root = queue.paths.root if isinstance(queue, JobQueue) else queue
    inbox = root / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        data = content
    else:
        data = (content if isinstance(content, str) else json.dumps(content)).encode()
    target = inbox / name
    path = inbox / f".{name}.tmp" if maildir else target
    path.write_bytes(data)
    if owner is not None:
        os.chown(path, owner, owner)
    if maildir:
        os.replace(path, target)
    return target


def names(folder: Path) -> list[str]:
    """The visible entries of a queue folder, sorted (dot-names are work in progress)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def iso_seconds(duration: str) -> float:
    """Seconds of an API duration ("PT5.02S", ISO 8601 as the API writes it)."""
    assert duration.startswith("PT") and duration.endswith("S"), duration
    return float(duration[2:-1])


# ------------------------------------------------------------------------ the status page


@asynccontextmanager
async def running_web(settings: Settings) -> AsyncIterator[str]:
    """`enroller web` in this process on `settings.web_port`; yields its base URL."""
    from worker.commands.web import serve

    ready = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(serve, settings, lambda _url: ready.set())
        await ready.wait()
        yield f"http://127.0.0.1:{settings.web_port}"
        tg.cancel_scope.cancel()


# ------------------------------------------------------------------------------------ waits

POLL_S = 0.02  # how often a wait looks again: small next to anything a test waits for


async def wait_for(
    predicate: Callable[[], object | Awaitable[object]],
    seconds: float = 60,
    what: str = "",
    step: float = POLL_S,
) -> Any:
    """Poll until `predicate()` (a plain or an async function) is truthy; return that value.

    `seconds` bounds a hang, it asserts nothing about speed.
    """
    try:
        with anyio.fail_after(seconds):
            while True:
                value = predicate()
                if inspect.isawaitable(value):
                    value = await value
                if value:
                    return value
                await anyio.sleep(step)  # another process does it: there is no event to await
    except TimeoutError:
        raise AssertionError(f"not within {seconds} s: {what or predicate}") from None


def wait_until(
    predicate: Callable[[], object], seconds: float = 60, what: str = "", step: float = POLL_S
) -> Any:
    """`wait_for` for synchronous tests: poll until `predicate()` is truthy; return that value."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what or predicate}")
        time.sleep(step)  # another process does it: there is no event to wait on


def max_requests_per_step(max_retries: int, max_attempts: int = MAX_ATTEMPTS_PER_STEP) -> int:
    """The most requests one failing step sends (worker/enrollment/requests.py says why):
    each of its `max_attempts` tries sends one request 1 + `max_retries` times."""
    return (1 + max_retries) * max_attempts
