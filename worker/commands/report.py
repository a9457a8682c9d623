"""`enroller report JOB`: one finished job's summary and where its files are.

Owns: finding a job's report in `reports/` by its id, a prefix of it, or its manifest's name
(the newest run when a name ran several times), and wording its head (`worker.ops.overview`
reads it as a stream, never the rows). A job that could not run at all has no report but an
`<job>.error.json` in failed/: that is found and told too. Read-only.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from worker.base.exitcodes import EXIT_FAILURES, EXIT_OK
from worker.ops.overview import report_head
from worker.queue.paths import QueuePaths

REPORT_SUFFIX = ".report.json"
ERROR_SUFFIX = ".error.json"


def find_reports(paths: QueuePaths, wanted: str) -> list[Path]:
    """Reports whose job id is `wanted`, starts with it, or whose manifest is named `wanted`,
    newest first; an exact id wins alone."""
    exact = paths.reports / f"{wanted}{REPORT_SUFFIX}"
    if exact.is_file():
        return [exact]
    stem = Path(wanted).stem if wanted.endswith((".csv", ".json")) else wanted
    try:
        names = [n for n in os.listdir(paths.reports) if n.endswith(REPORT_SUFFIX)]
    except OSError:
        return []
    found = [paths.reports / n for n in names if n.startswith(stem)]
    return sorted(found, key=_mtime, reverse=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def summary_lines(head: dict[str, Any], paths: QueuePaths) -> Iterator[str]:
    """The words of one report's head."""
    job_id = str(head.get("job_id"))
    yield f"job {job_id} (manifest {head.get('manifest')})"
    yield f"  started {head.get('started_at')}, finished {head.get('finished_at')}"
    if head.get("interrupted"):
        yield "  interrupted: an earlier start was cut (a stop, a crash); this run resumed it"
    counts = head.get("counts") if isinstance(head.get("counts"), dict) else {}
    told = ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "none"
    yield f"  {head.get('total')} enrollments: {told}"
    yield f"  {head.get('requests')} requests, {head.get('credits_spent')} credits spent"
    usage = head.get("usage") if isinstance(head.get("usage"), dict) else {}
    if usage:
        yield (
            f"  usage records: {usage.get('found')} found of {usage.get('expected')} expected, "
            f"{usage.get('missing_count', 0)} missing, "
            f"{usage.get('double_charged_count', 0)} charged twice"
        )
    yield "files:"
    files = head.get("files") if isinstance(head.get("files"), dict) else {}
    notes = {
        "failures": "the failed, conflicting and skipped rows",
        "retry": "fix the cause, then drop it into inbox/",
    }
    for name, where in files.items():
        if isinstance(where, str) and Path(where).exists():
            note = f"  ({notes[name]})" if name in notes else ""
            yield f"  {name:<9} {where}{note}"
    for manifest in sorted(paths.done.glob(f"{job_id}.*")):
        yield f"  {'manifest':<9} {manifest}"


def run_report(queue_dir: Path, job: str, as_json: bool, out: TextIO | None = None) -> int:
    """0 when the job's report is found and printed, 1 otherwise (with what is there)."""
    stream = out if out is not None else sys.stdout
    paths = QueuePaths(queue_dir)
    found = find_reports(paths, job)
    head = report_head(found[0]) if found else None
    if head is None:
        return _not_found(paths, job, stream)
    if as_json:
        stream.write(json.dumps(head, indent=2, ensure_ascii=False) + "\n")
        return EXIT_OK
    for line in summary_lines(head, paths):
        stream.write(line + "\n")
    if len(found) > 1:
        stream.write(f"({len(found) - 1} earlier runs match {job!r}: name the job id)\n")
    return EXIT_OK


def _not_found(paths: QueuePaths, job: str, stream: TextIO) -> int:
    errors = sorted(paths.failed.glob(f"{job}*{ERROR_SUFFIX}"))
    try:
        doc = json.loads(errors[0].read_text("utf-8")) if errors else None
    except (OSError, ValueError):
        doc = None
    if errors and isinstance(doc, dict):
        stream.write(f"job {doc.get('job_id')} could not run; it is in failed/:\n")
        for problem in doc.get("problems", []):
            reason = problem.get("reason") if isinstance(problem, dict) else problem
            stream.write(f"  {reason}\n")
        stream.write(f"  error file: {errors[0]}\n")
        return EXIT_OK
    stream.write(f"no report of a job {job!r} in {paths.reports}\n")
    return EXIT_FAILURES
