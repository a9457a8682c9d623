"""The worker's exit codes, the CLI contract every command and `enroller run` keep.

Owns: what a process exit status means. 0: everything asked for was done (every enrollment
enrolled, unchanged, kept or replaced, every file valid…); 1: it ran, and some of it failed
(the report or the output says which); 2: it could not run at all (configuration,
credentials, queue setup); 75: try again later (the API asked `run --once` to wait longer than
it may). The deployments rely on it (Kubernetes `podFailurePolicy` counts 1 and 2 as failures).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURES = 1
EXIT_FATAL = 2
# sysexits.h EX_TEMPFAIL: `run --once` stopped because the API asked to wait longer than
# ENROLLER_MAX_RETRY_AFTER; its jobs are checkpointed in active/: run again after that time.
EXIT_TEMPFAIL = 75
