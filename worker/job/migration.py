"""A migration of `"identities": "all"`: the space's identities, listed once per job.

Owns: paging through the space's identities (sorted by handle) into `identities.txt` beside
the job, written atomically once, so that a resumed job (after `kill -9` too) walks exactly
the list its first start saw, and identities created meanwhile do not shift it. The list is
one handle a line on disk, never a list in memory: a space of a million identities costs
~20 MB of disk and flat memory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

import anyio
import anyio.to_thread
import structlog

from worker.api import errors
from worker.api.client import ApiClient
from worker.base.errors import JobMustCheckpoint, JobMustFail
from worker.base.fsutil import fsync_dir
from worker.enrollment.driver import FatalApiError
from worker.enrollment.waiting import ApiAskedToWait
from worker.job.input import JobInput
from worker.manifest.migration import with_identities
from worker.queue.paths import ClaimedJob

log = structlog.get_logger(__name__)

IDENTITIES_FILE = "identities.txt"
MAX_IDENTITIES = 10_000_000  # a space listing beyond this is not a space: it does not end
PAGE_SIZE = 50


def needs_identities(loaded: JobInput) -> bool:
    """A migration of "all" whose identities are not listed yet in this process."""
    migration = loaded.manifest.migration
    return migration is not None and migration.identities == "all"


async def list_identities(job: ClaimedJob, client: ApiClient, loaded: JobInput) -> None:
    """Make `loaded` walk the space's identities: listed now, or as an earlier start did."""
    migration = loaded.manifest.migration
    assert migration is not None
    path = job.dir / IDENTITIES_FILE
    if await anyio.to_thread.run_sync(path.exists):
        count = await anyio.to_thread.run_sync(_count, path)
    else:
        tmp = path.with_name(IDENTITIES_FILE + ".tmp")
        fh = await anyio.to_thread.run_sync(lambda: tmp.open("w", encoding="utf-8"))
        try:
            count = await _page(client, migration.owner, migration.space, fh)
            await anyio.to_thread.run_sync(_sync, fh)
        finally:
            fh.close()
        await anyio.to_thread.run_sync(_publish, tmp, path)
        log.info("migration_identities_listed", count=count)
    loaded.manifest = with_identities(loaded.manifest, path, count)


async def _page(client: ApiClient, owner: str, space: str, out: TextIO) -> int:
    """Write every identity handle of the space to `out`, in handle order, a page at a time
    (in a thread: the event loop never waits on the disk); how many."""
    count, lines = 0, []
    where = f"listing the identities of {owner}/{space}"
    try:
        async for identity in client.list_identities(
            owner, space, sort="handle", page_size=PAGE_SIZE
        ):
            lines.append(identity.handle + "\n")
            count += 1
            if count > MAX_IDENTITIES:
                raise JobMustFail(f"{where}: more than {MAX_IDENTITIES} identities")
            if len(lines) >= PAGE_SIZE:
                await anyio.to_thread.run_sync(out.writelines, lines)
                lines = []
    except errors.ApiPaused as exc:  # run --once does not wait that long: a later run resumes
        raise ApiAskedToWait(f"{where}: {exc}") from None
    except errors.Unauthorized as exc:
        raise FatalApiError(f"{where}: {exc}") from None
    except (errors.OutcomeUnknown, errors.ServerError, errors.RateLimited) as exc:
        raise JobMustCheckpoint(f"{where}: {exc}; the job resumes later") from None
    except errors.ApiError as exc:
        raise JobMustFail(f"{where}: {exc}") from None
    await anyio.to_thread.run_sync(out.writelines, lines)
    return count


def _sync(fh: TextIO) -> None:
    fh.flush()
    os.fsync(fh.fileno())


def _publish(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _count(path: Path) -> int:
    with path.open(encoding="utf-8") as fh:
        return sum(1 for _ in fh)
