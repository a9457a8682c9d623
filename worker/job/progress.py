"""How far one job got, as `progress.json`, the progress bar and `job_progress` lines show it.

Owns: `JobProgress`: finished enrollments by outcome, the steps done in this start (audios sent,
computes: the journal's own count of what it wrote), and the time figures a rate and an ETA
come from. Enrollments alone under-tell a job: one with 23 of 40 uploads done still has 0 of
40 enrollments finished. `enroller status` (`worker.ops.overview`) reads the JSON.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

# Journal record kinds that are a step of the API done (an audio sent, a compute answered).
STEP_KINDS = {"audio_created": "audios_sent", "computed": "computes"}


@dataclass
class JobProgress:
    """One job's progress; the job's own object is shared (observers read, never copy it)."""

    total: int
    counts: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    started_at: float = field(default_factory=time.time)  # wall clock, for people
    done_at_start: int = 0  # enrollments a resumed job had finished before this start
    # The journal's count of records written by kind (`Journal.kinds`), shared once it opens.
    written: Counter[str] = field(default_factory=Counter)

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def steps(self) -> dict[str, int]:
        return {name: self.written[kind] for kind, name in STEP_KINDS.items()}

    def as_json(self) -> dict[str, object]:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = (self.done - self.done_at_start) / elapsed
        left = self.total - self.done
        return {
            "total": self.total,
            "done": self.done,
            "counts": dict(self.counts),
            "steps": self.steps(),
            "per_second": round(rate, 3),
            "eta_s": round(left / rate, 1) if rate > 0 else None,
            "done_at_start": self.done_at_start,
            "started_at": datetime.fromtimestamp(self.started_at, UTC).isoformat(),
            "updated_at": datetime.now(UTC).isoformat(),
        }
