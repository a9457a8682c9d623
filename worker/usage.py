"""The usage check after a job: one usage record per voiceprint the job computed.

Owns: which voiceprints a job computed (the driver journals `Computed` once a compute of ours
took effect, whatever the enrollment's outcome afterwards) and the comparison with the usage
records the API lists for their owners: none missing, none charged twice. A computed voiceprint
is a credit spent: `UsageCheck.expected` is the job's `credits_spent`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import anyio
import anyio.to_thread

from worker.api import errors
from worker.api.client import ApiClient
from worker.api.schemas import UsageRecord
from worker.journal import Computed as ComputedRecord
from worker.journal import read_records
from worker.queue import ClaimedJob
from worker.report import UsageCheck

USAGE_CLOCK_SKEW = timedelta(minutes=5)
# Usage pages fetched at once: the check after the last compute takes pages / 8 round trips.
USAGE_READ_AHEAD = 8


async def check_usage(client: ApiClient, job: ClaimedJob, started_at: datetime) -> UsageCheck:
    """One usage record per voiceprint this job computed, whatever its outcome afterwards:
    none missing, none charged twice."""
    computed = await anyio.to_thread.run_sync(_computed_keys, job.journal_path)
    expected = dict.fromkeys(computed, 0)
    owners = set(computed.values())
    found = 0
    try:
        for owner in sorted(owners):
            async for record in client.list_usage_records(
                owner,
                after=started_at - USAGE_CLOCK_SKEW,
                sort="computedAt",  # oldest first: records billed meanwhile land on later pages
                read_ahead=USAGE_READ_AHEAD,
            ):
                key = _record_key(owner, record)
                if key in expected:
                    expected[key] += 1
                    found += 1
    except errors.ApiError as exc:
        return UsageCheck(expected=len(expected), found=found, error=str(exc))
    return UsageCheck(
        expected=len(expected),
        found=found,
        missing=sorted(k for k, n in expected.items() if n == 0),
        double_charged=sorted(k for k, n in expected.items() if n > 1),
    )


def _computed_keys(journal_path: Path) -> dict[str, str]:
    """Key → owner of every voiceprint this job computed, enrolled or not afterwards: the
    driver journals `Computed` once a compute of ours took effect (blocking: reads)."""
    return {
        rec.key: rec.key.split("/", 1)[0]
        for rec in read_records(journal_path)
        if isinstance(rec, ComputedRecord)
    }


def _record_key(owner: str, record: UsageRecord) -> str:
    """The enrollment key a usage record bills: owner/space/identity/voiceprint."""
    vp = record.voiceprint
    space = record.space.handle if record.space else ""
    identity = vp.identity.handle if vp.identity else ""
    return f"{owner}/{space}/{identity}/{vp.handle}"
