"""Manifests: the JSON and CSV files operators drop, parsed into enrollments and problems.

Where each concern lives (import a name from the module that defines it):

- `models`: `Problem`, `ManifestDefaults`, `Enrollment`, `RejectedEnrollment`.
- `values`: the rules of single values (handles, aliases, models, minAudios, audio paths).
- `build`: one candidate enrollment validated, one small function per rule.
- `cross`: the rules across enrollments (a voiceprint once per job, an audio for one identity).
- `stream`: `ManifestStream`, enrollments built only when iterated.
- `json`, `csv`: what each format's fields mean, and how its file is read (as a stream from disk
  when large: `worker.manifest.jsonscan`, `worker.manifest.csvscan`).
- `read`: from a path or bytes to the right format, and the file-level checks.
- `retry`: the retry manifest writer.

Parsing is pure apart from `read` and the streamed second passes: a bad enrollment never sinks
the others (it becomes a `RejectedEnrollment`), only what spoils the whole file is a file
problem, and nothing here ever raises for bad input.
"""
