"""Manifests: the JSON and CSV files operators drop, parsed into enrollments and problems.

The package's public names, re-exported so that `from worker.manifest import …` keeps working.
Where each concern lives:

- `models`: `Problem`, `ManifestDefaults`, `Enrollment`, `RejectedEnrollment`, `ParsedManifest`.
- `values`: the rules of single values (handles, aliases, models, minAudios, audio paths).
- `build`: one candidate enrollment validated, one small function per rule.
- `cross`: the rules across enrollments (a voiceprint once per job, an audio for one identity).
- `stream`: `ManifestStream`, enrollments built only when iterated.
- `json`, `csv`: what each format's fields mean, and how its file is read (as a stream from disk
  when large: `worker.jsonscan`, `worker.csvscan`).
- `read`: from a path or bytes to the right format, and the file-level checks.
- `retry`: the retry manifest writer.

Parsing is pure apart from `read` and the streamed second passes: a bad enrollment never sinks
the others (it becomes a `RejectedEnrollment`), only what spoils the whole file is a file
problem, and nothing here ever raises for bad input.
"""

from worker.manifest.columns import CSV_OPTIONAL, CSV_REQUIRED
from worker.manifest.csv import parse_csv, stream_csv
from worker.manifest.json import parse_json, stream_json
from worker.manifest.models import (
    DEFAULT_MAX_BYTES,
    Enrollment,
    Kind,
    ManifestDefaults,
    ManifestItem,
    ParsedManifest,
    Problem,
    RejectedEnrollment,
)
from worker.manifest.read import (
    STREAM_CSV_MIN_BYTES,
    STREAM_JSON_MIN_BYTES,
    open_manifest,
    parse_manifest,
    read_manifest,
    stream_manifest,
)
from worker.manifest.retry import enrollment_json, retry_manifest_bytes, retry_manifest_chunks
from worker.manifest.stream import ManifestStream
from worker.manifest.values import (
    ALIAS_MAX,
    DEFAULT_VOICEPRINT,
    HANDLE_MAX,
    HANDLE_RE,
    MIN_AUDIOS_MAX,
    MIN_AUDIOS_MIN,
    NOT_UNICODE,
    alias_problem,
    handle_problem,
    show,
)

__all__ = [
    "ALIAS_MAX",
    "CSV_OPTIONAL",
    "CSV_REQUIRED",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_VOICEPRINT",
    "HANDLE_MAX",
    "HANDLE_RE",
    "MIN_AUDIOS_MAX",
    "MIN_AUDIOS_MIN",
    "NOT_UNICODE",
    "STREAM_CSV_MIN_BYTES",
    "STREAM_JSON_MIN_BYTES",
    "Enrollment",
    "Kind",
    "ManifestDefaults",
    "ManifestItem",
    "ManifestStream",
    "ParsedManifest",
    "Problem",
    "RejectedEnrollment",
    "alias_problem",
    "enrollment_json",
    "handle_problem",
    "open_manifest",
    "parse_csv",
    "parse_json",
    "parse_manifest",
    "read_manifest",
    "retry_manifest_bytes",
    "retry_manifest_chunks",
    "show",
    "stream_csv",
    "stream_json",
    "stream_manifest",
]
