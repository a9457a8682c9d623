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
    if not path.exists():
        tmp = path.with_name(IDENTITIES_FILE + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:  # small buffered writes, as pages come
            count = await _page(client, migration.owner, migration.space, fh)
            await anyio.to_thread.run_sync(_sync, fh)
        os.replace(tmp, path)
        await anyio.to_thread.run_sync(fsync_dir, job.dir)
        log.info("migration_identities_listed", count=count)
    count = await anyio.to_thread.run_sync(_count, path)
    loaded.manifest = with_identities(loaded.manifest, path, count)


async def _page(client: ApiClient, owner: str, space: str, out: TextIO) -> int:
    """Write every identity handle of the space to `out`, in handle order; how many."""
    count = 0
    where = f"listing the identities of {owner}/{space}"
    try:
        async for identity in client.list_identities(
            owner, space, sort="handle", page_size=PAGE_SIZE
        ):
            out.write(identity.handle + "\n")
            count += 1
            if count > MAX_IDENTITIES:
                raise JobMustFail(f"{where}: more than {MAX_IDENTITIES} identities")
    except (errors.OutcomeUnknown, errors.ServerError, errors.RateLimited) as exc:
        raise JobMustCheckpoint(f"{where}: {exc}; the job resumes later") from None
    except errors.ApiError as exc:
        raise JobMustFail(f"{where}: {exc}") from None
    return count


def _sync(fh: TextIO) -> None:
    fh.flush()
    os.fsync(fh.fileno())


def _count(path: Path) -> int:
    with path.open(encoding="utf-8") as fh:
        return sum(1 for _ in fh)
