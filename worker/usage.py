"""The usage check after a job: one usage record per voiceprint the job computed.

Owns: which voiceprints a job computed (the driver journals `Computed` once a compute of ours
took effect, whatever the enrollment's outcome afterwards) and the comparison with the usage
records the API lists for their owners: none missing, none charged twice. A computed voiceprint
is a credit spent: `UsageCheck.expected` is the job's `credits_spent`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import anyio
import anyio.to_thread

from worker.api import errors
from worker.api.client import ApiClient
from worker.api.schemas import UsageRecord
from worker.journal_index import JournalIndex
from worker.report import UsageCheck

USAGE_CLOCK_SKEW = timedelta(minutes=5)
# Usage pages fetched at once: the check after the last compute takes pages / 8 round trips.
USAGE_READ_AHEAD = 8
CHARGE_BATCH = 1_000  # usage records counted into the index at once
LISTED = 100  # missing / double-charged keys named in the report (all are counted)


async def check_usage(client: ApiClient, index: JournalIndex, started_at: datetime) -> UsageCheck:
    """One usage record per voiceprint this job computed, whatever its outcome afterwards:
    none missing, none charged twice.

    The computed keys and their charges live in the journal's index (`Computed` records, put
    there by `index.catch_up()` first), not in a dict: a million-enrollment job checks its
    usage in the same memory as a ten-enrollment one.
    """
    await anyio.to_thread.run_sync(index.catch_up)
    await anyio.to_thread.run_sync(index.reset_charges)  # an earlier, interrupted check's
    expected = await anyio.to_thread.run_sync(index.computed_count)
    found = 0
    try:
        for owner in await anyio.to_thread.run_sync(index.computed_owners):
            keys: list[str] = []
            async for record in client.list_usage_records(
                owner,
                after=started_at - USAGE_CLOCK_SKEW,
                sort="computedAt",  # oldest first: records billed meanwhile land on later pages
                read_ahead=USAGE_READ_AHEAD,
            ):
                keys.append(_record_key(owner, record))
                if len(keys) >= CHARGE_BATCH:
                    found += await anyio.to_thread.run_sync(index.charge, keys)
                    keys = []
            found += await anyio.to_thread.run_sync(index.charge, keys)
    except errors.ApiError as exc:
        return UsageCheck(expected=expected, found=found, error=str(exc))
    missing, missing_keys = await anyio.to_thread.run_sync(
        lambda: index.charged(times="= 0", limit=LISTED)
    )
    double, double_keys = await anyio.to_thread.run_sync(
        lambda: index.charged(times="> 1", limit=LISTED)
    )
    return UsageCheck(
        expected=expected,
        found=found,
        missing=missing_keys,
        double_charged=double_keys,
        missing_count=missing,
        double_charged_count=double,
    )


def _record_key(owner: str, record: UsageRecord) -> str:
    """The enrollment key a usage record bills: owner/space/identity/voiceprint."""
    vp = record.voiceprint
    space = record.space.handle if record.space else ""
    identity = vp.identity.handle if vp.identity else ""
    return f"{owner}/{space}/{identity}/{vp.handle}"
