"""The bridge from the API's "wait longer than you may" to the worker's error tree.

Owns: `ApiAskedToWait`, raised where an `errors.ApiPaused` reaches the engine or the job (the
driver, the usage check): under `run --once` the API asked for a wait above
`ENROLLER_MAX_RETRY_AFTER`, so the job stops, its journal kept, and a later run resumes it.
"""

from __future__ import annotations

from worker.base.errors import JobMustWait


class ApiAskedToWait(JobMustWait):
    """The API asked for a longer wait than `run --once` waits (`errors.ApiPaused`): the job
    stops here, its journal kept, and a later run resumes it."""
