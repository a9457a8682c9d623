"""The models of `enroller plan`: what one enrollment, one file and a whole run cost.

Owns: the figures as `--json` prints them (`PlanResult`, `ManifestPlan`, `PlanTotals`) and
`EnrollmentCost`, one runnable enrollment reduced to what it costs. Pure data:
`worker.commands.plan` computes them, `worker.commands.plan_text` words them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, computed_field

from worker.enrollment.requests import WORKER_START_REQUESTS
from worker.manifest.models import Problem


class EnrollmentCost(BaseModel):
    """One runnable enrollment, reduced to what it costs."""

    model_config = ConfigDict(frozen=True)

    owner: str
    space: str
    model: str
    file_sizes: tuple[int, ...]
    audio_seconds: float
    s3_files: int = 0  # s3:// audios: the plan reads no S3, so their sizes are not known
    derived_files: int = 0  # uploaded as a mono FLAC made first (worker.audio.derive): size differs
    voice_near: bool = False  # a file near the voice rule: the server may refuse it (no compute)
    migration: bool = False  # a voiceprint moved to a new model from its audio on the server
    retire: str = "delete"  # what the move does with the old voiceprint (its requests differ)


class MigrateAll(BaseModel):
    """A migration of every identity of a space: what only the API can count (`check` does)."""

    space: str  # "owner/space"
    from_model: str
    to_model: str
    requests_per_identity: int  # worker.enrollment.requests.migration_requests


class ManifestPlan(BaseModel):
    """The figures of one manifest file."""

    file: str
    kind: str | None = None
    enrollments: int = 0  # every enrollment the file names
    runnable: int = 0  # those that pass local preflight
    voice_near: int = 0  # runnable ones with a file near the voice rule: the server decides
    rejected: int = 0  # those that preflight already rejects: no request, no credit
    audio_files: int = 0
    upload_bytes: int = 0  # of the files as they are; a derived FLAC's own size is not known yet
    derived_files: int = 0
    s3_files: int = 0  # of audio_files, in S3: not in upload_bytes, counted as two-step uploads
    audio_seconds: float = 0.0
    requests: int = 0  # enrollments plus the job's usage check
    rerun_requests: int = 0  # the same, were every enrollment already done (no usage check)
    usage_check_requests: int = 0
    credits: int = 0
    credits_by_owner: dict[str, int] = Field(default_factory=dict)
    spaces: list[str] = Field(default_factory=list)  # "owner/space", sorted
    models: list[str] = Field(default_factory=list)
    seconds_at_rate_limit: float = 0.0
    problems: list[Problem] = Field(default_factory=list)  # the rejected rows, and why
    warnings: list[Problem] = Field(default_factory=list)
    migrate_all: MigrateAll | None = None  # identities: "all" (not counted offline)


class PlanTotals(BaseModel):
    """Every manifest together, as one worker start runs them."""

    enrollments: int = 0
    runnable: int = 0
    rejected: int = 0
    audio_files: int = 0
    upload_bytes: int = 0
    requests: int = 0  # every manifest's, plus the worker start's
    rerun_requests: int = 0  # the same, were every enrollment already done
    worker_start_requests: int = WORKER_START_REQUESTS
    credits: int = 0
    credits_by_owner: dict[str, int] = Field(default_factory=dict)
    seconds_at_rate_limit: float = 0.0


class PlanResult(BaseModel):
    """The outcome of `enroller plan PATH…`, as `--json` prints it."""

    audio_root: str
    rate_limit: float  # requests per second (ENROLLER_RATE_LIMIT)
    assumption: str = (
        "every enrollment is new; one already done from the same files costs 3 requests (an "
        "identity create, a voiceprint read, a listing of its audios) and no credit"
    )
    files: list[ManifestPlan] = Field(default_factory=list)
    totals: PlanTotals = Field(default_factory=PlanTotals)
    errors: list[Problem] = Field(default_factory=list)  # about the arguments, not a file

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not self.errors and all(not f.problems for f in self.files)
