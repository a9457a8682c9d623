"""The worker's one error tree: the class of an error says what its caller may do.

Owns: the root `EnrollerError` and its four kinds. Every exception class the worker defines
outside `worker/api/` derives from exactly one kind, so a caller decides by the kind
(`isinstance`) and never has to know which module raised it — as httpx's tree tells an unknown
outcome from a known HTTP status. The job's fault boundary
(`worker/job/boundary.py`) reads nothing but these shapes.

- `WorkerMustStop`: nothing else can work either (credentials refused, queue unusable,
  settings invalid). The process stops; a running job is checkpointed first.
- `JobMustFail`: this job cannot run (its manifest is unusable, its journal is damaged). Its
  manifest goes to `failed/` with `error.json`; the other jobs go on.
- `JobMustCheckpoint`: stop this job now and keep its journal; a later start resumes it (the
  disk refused a journal write, the journal index failed). `JobNoLongerHeld` is the case where
  the job is not ours any more: stop without touching it.
- `EnrollmentFailed`: one enrollment (one audio, one row) cannot be done; its caller records
  that enrollment as failed and the job goes on. One that escapes to the boundary is a bug of
  the job, which then fails like any unknown exception.

`worker/api/errors.py` keeps its own tree (`ApiError`: outcome known or unknown), because its
callers ask another question (may this request be retried?). Where an API answer means a kind
of this tree, the one who reads it says so explicitly (the enrollment driver raises
`FatalApiError`, a `WorkerMustStop`, for a refused credential).

This module is row 0 of the layers: it imports nothing of the worker.
"""

from __future__ import annotations


class EnrollerError(Exception):
    """The root of the worker's errors; never raised itself, only its four kinds' classes."""


class WorkerMustStop(EnrollerError):
    """The worker cannot go on at all: whoever catches it stops the process (exit code 2).

    Raised where configuration, credentials or the queue directory turn out unusable: the
    settings and the key file (`InvalidSettings`, `KeyFileProblem`: the CLI prints them), the
    queue's setup and claim (`QueueSetupError`), the service's access check (`FatalError`), the
    enrollment driver on a refused credential (`FatalApiError`). A job that meets one is
    checkpointed (not failed: it is not at fault), then the service stops.
    """


class JobMustFail(EnrollerError):
    """This job cannot run: the caller fails it (manifest to `failed/`, `error.json`).

    Raised for a manifest or a journal that cannot be used as it is, where retrying would meet
    the same bytes: the manifest readers (`JsonScanError`, `CsvChanged`), the journal
    (`JournalCorrupt`), a path that is no regular file (`NotRegularFile`), `enroller submit`
    refusing a file (`SubmitRefused`). Never stops the other jobs or the process.
    """


class JobMustCheckpoint(EnrollerError):
    """Stop this job now and keep its journal: a later start resumes it where it stopped.

    Raised where the job is not at fault but cannot safely go on: the journal when the disk
    refused an append (`JournalWriteFailed`), the journal index when SQLite failed
    (`JournalIndexFailed`). The boundary gives the lease back and records it as a start that
    did not end, so a fault that persists fails the job after `max_job_starts`.
    """


class JobMustWait(JobMustCheckpoint):
    """Stop this job now and keep its journal, because the work must wait, not because of a
    fault: the API asked for a longer wait than the operator allows (`ApiAskedToWait`, under
    `run --once`). The boundary releases the lease and records a clean stop (not a start that
    did not end), so waiting never counts towards `max_job_starts`.
    """


class JobNoLongerHeld(JobMustCheckpoint):
    """The job is not this worker's any more: stop at once, write nothing to it, release nothing.

    Raised by the queue's lease (`LeaseLost`) when another worker took the job over, its
    directory is gone or a renewal came too late; whoever holds it now resumes it from the
    journal.
    """


class EnrollmentFailed(EnrollerError):
    """One enrollment cannot be done (an audio file unreadable or undecodable): it fails alone.

    Raised by the audio layer (`AudioUnreadable`, `AudioChanged`, `DecodeError`); its caller
    (preflight, the enrollment driver) turns it into that enrollment's failed outcome or a
    preflight problem, and the job goes on. Not meant to reach the job's boundary; one that
    does is a bug of the job, which then fails.
    """


# The four kinds: every exception class of the worker outside worker/api/ derives from one.
KINDS: tuple[type[EnrollerError], ...] = (
    WorkerMustStop,
    JobMustFail,
    JobMustCheckpoint,
    EnrollmentFailed,
)
