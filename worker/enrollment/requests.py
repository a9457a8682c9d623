"""The request plan of one enrollment and of one job, as the engine spends requests.

Owns: the number of API requests a fresh enrollment costs, the most one step may cost when it
keeps failing (below), the requests of a job's usage check and of a worker start, and the credits a
compute costs (design.md §8: requests are the budget). `enroller plan` and `enroller check`
estimate a run from these functions only, so whoever changes what the engine sends (issue 13:
inline upload, compute as validation) changes the numbers here, in the same commit, and the
plan follows. `tests/e2e/test_plan.py` compares them with an actual run on the emulator.

The most one step may cost. While a step keeps failing transiently it sends at most
(1 + `max_retries`) × `MAX_ATTEMPTS_PER_STEP` requests: 4 × 7 = 28 with the defaults. Two
loops multiply. The client sends one request at most 1 + `max_retries` times
(ENROLLER_MAX_RETRIES; fewer when ENROLLER_RETRY_MAX_TIME runs out first, or when an audio
create's outcome becomes unknown) before its failure reaches the step. The rules then try the
step again, and fail the enrollment at the step's `Limits.max_attempts`-th such failure
(MAX_ATTEMPTS_PER_STEP = 4: tried 4 times in all), "gave up after retries". A step is one
counter of `View.attempts`: the step (all its actions in one enrollment, e.g. every add), apart
from the unknown outcomes of each file's audio create. Not counted, because they are not
failures: resends after a 429 with Retry-After (the server paces them, however many), and per
request one sign-in and resend after a session token expired; nor the reads a 409 calls for,
each its own request bounded the same way. The `max_retries` setting's description says the
same (`tests/unit/test_plan.py` holds it to these numbers, `tests/e2e/test_engine_requests.py`
to a run).

Pure: no I/O, no settings, no clock. It never decides what the engine does; it describes it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# Usage records read per page by the job's usage check (`worker.job.run._check_usage`).
USAGE_PAGE_SIZE = 50
# Requests made once per worker start, whatever it runs: `GET /user` (the caller's handle
# tells the usage check which records path to read; the client caches it).
WORKER_START_REQUESTS = 1
# Credits one compute costs: compute is the billed event (contract §3 "Usage records").
CREDITS_PER_COMPUTE = 1


def enrollment_requests(file_sizes: Sequence[int], inline_max_bytes: int) -> int:
    """Requests of one fresh enrollment whose audio files have these sizes (bytes).

    For k files: create the identity (1); per file, create the audio with its bytes inline
    (1) when it is at most `inline_max_bytes` (ENROLLER_INLINE_UPLOAD_MAX_BYTES), else create
    it and upload its raw bytes (2); create the voiceprint (1); per file, add it (k); compute
    (1), whose answer is the validation (the adds' answers already counted exactly our audios,
    so no listing is needed before it). That is 3 + 2k with inline uploads: 5 for one audio.
    An asynchronous API adds the reads that wait for processing; ENROLLER_VALIDATE_WITH_GET
    one GET.
    """
    k = len(file_sizes)
    uploads = sum(1 if size <= inline_max_bytes else 2 for size in file_sizes)
    return 1 + uploads + 1 + k + 1


# Per job, the first swap asks whether the API renames voiceprints (a PATCH to the voiceprint's
# own handle; worker.enrollment.swap.VoiceprintEdits), and without rename whether it deletes.
SWAP_PROBE_REQUESTS = 1


def migration_requests(audios: int = 1, retire: str = "delete") -> int:
    """Requests to move one identity's voiceprint of `audios` audios to a new model, where the
    API renames voiceprints: read it (1) and list its audios (1); read the new handle (1),
    create the new voiceprint (1), add each audio (k), compute (1, whose answer validates it);
    move the old one aside (1) and the new one in (1); with `retire: delete`, delete the old
    one (1). 8 + k, or 7 + k with `retire: keep`: 9 for one audio. No audio is uploaded."""
    return 7 + audios + (1 if retire == "delete" else 0)


# A migration's identity already on the new model: the one voiceprint read that shows it
# (`worker.enrollment.migrate`); its audios are listed only when it is on the old model.
MIGRATED_REQUESTS = 1


# Audios read per page when a voiceprint's audios are listed (`worker.api.voiceprints`).
AUDIO_PAGE_SIZE = 50


def unchanged_requests(audios: int) -> int:
    """Requests of an enrollment that is already done (outcome `unchanged`), measured on the
    emulator (`tests/e2e/test_plan.py`): the identity's create, which learns it exists (1), the
    voiceprint read that shows it computed with the model (1), and the listing of its audios
    that proves they are the manifest's files (a page of 50). No credit: nothing is computed.
    """
    return 1 + 1 + max(1, math.ceil(audios / AUDIO_PAGE_SIZE))


def usage_check_requests(computes: int) -> int:
    """Requests of one job's usage check for `computes` computes of one owner (pages of 50)."""
    return math.ceil(computes / USAGE_PAGE_SIZE) if computes > 0 else 0


def enrollment_credits() -> int:
    """Credits one fresh enrollment costs: its one compute."""
    return CREDITS_PER_COMPUTE
