"""`enroller submit FILE…`: put manifests into the queue's inbox the safe way.

Owns: the dropper side of the Maildir contract (design.md §3), so that an operator or a cron
line never needs to know it: each file is copied to a temporary dot-name in `inbox/`, fsynced,
validated there (unless `--no-validate`), then published under its own name by `link`, which
never replaces a file another submitter published first (a taken name gets `-2`, `-3`, …),
and the directory is fsynced. The worker therefore never sees half a manifest, and two
submitters of `tonight.csv` never overwrite each other. It prints the job id each file will
get (`worker.queue.rules.job_id_for`: name stem + content hash), which names its reports.

What is validated is the copy that is published, not the source, which may change meanwhile.
An export with a few bad rows is still queued: their problems are printed, and the worker
reports those rows failed without a request or a credit (its failures CSV and retry manifest
list them). A file is refused when the file itself is the problem (not a manifest, unreadable,
no enrollment that can run), or, with `--strict`, when any row has one. A problem shared by many
rows is said once with a count (`worker.manifest.digest`). With several files, nothing is
published unless every one passes. It never calls the API and never touches active/, done/ or
failed/.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TextIO

from pydantic import BaseModel, Field, computed_field

from worker.base.errors import JobMustFail
from worker.base.exitcodes import EXIT_FAILURES, EXIT_OK
from worker.base.fsutil import (
    NotRegularFile,
    fsync_dir,
    open_regular,
    sha256_file,
    temp_name_for,
)
from worker.commands.submit_policy import PolicyRefused, write_policy
from worker.commands.submit_s3 import fetch_manifest, store_for
from worker.commands.validate import Checks, preflighted
from worker.manifest.digest import ProblemDigest
from worker.manifest.models import ManifestDefaults, Problem
from worker.manifest.preflight import bounded_cache
from worker.manifest.read import open_manifest
from worker.objects.store import ObjectUnavailable, S3Store
from worker.objects.uri import is_s3
from worker.queue.rules import NameKind, classify_name, job_id_for

_CHUNK = 1 << 20
# Names tried for one file before giving up: `x.csv`, `x-2.csv`, … (each try is one link).
MAX_NAME_TRIES = 1000


class SubmitRefused(JobMustFail):
    """One file cannot be submitted; the message is the reason, for a person."""


class Submitted(BaseModel):
    """One file as published in inbox/."""

    source: str
    inbox_name: str
    job_id: str
    sha256: str
    bytes: int
    already_queued: bool = False  # the same bytes were waiting under that name: not doubled
    enrollments: int = 0  # as validated (0 with --no-validate)
    rejected: int = 0  # enrollments that will fail at preflight: no request, no credit
    problems: list[Problem] = Field(default_factory=list)  # theirs, folded; they do not refuse


class SubmitResult(BaseModel):
    """The outcome of `enroller submit`, as `--json` prints it."""

    inbox: str
    submitted: list[Submitted] = Field(default_factory=list)
    problems: list[Problem] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not self.problems


class _Staged:
    """A source copied to a temporary dot-name in inbox/, fsynced, not yet published."""

    def __init__(self, source: str, tmp: Path, name: str, sha256: str, size: int) -> None:
        self.source = source
        self.tmp = tmp
        self.name = name
        self.sha256 = sha256
        self.size = size
        self.checked = _Checked()

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


def _stage(source: str, inbox: Path, max_bytes: int, store: S3Store | None = None) -> _Staged:
    """Copy `source` into inbox/ under a temporary dot-name the worker ignores; fsync it."""
    name = PurePath(source).name
    if classify_name(name) is not NameKind.CANDIDATE:
        raise SubmitRefused(
            "is not a manifest name: the worker takes *.json and *.csv files only "
            "(and none whose name starts with '.')"
        )
    if is_s3(source):
        if store is None:
            raise SubmitRefused("is in S3, and this submit has no S3 client")
        try:
            tmp, sha, size = fetch_manifest(source, name, inbox, max_bytes, store)
        except ObjectUnavailable as exc:
            raise SubmitRefused(str(exc)) from None
        return _Staged(source, tmp, name, sha, size)
    try:
        src = open_regular(Path(source))
    except NotRegularFile as exc:
        raise SubmitRefused(f"is {exc.strerror}") from None
    except FileNotFoundError:
        raise SubmitRefused("does not exist") from None
    except OSError as exc:
        raise SubmitRefused(f"cannot be read ({exc.strerror or exc})") from None
    tmp = temp_name_for(inbox / name)
    digest = hashlib.sha256()
    size = 0
    with src:
        if os.fstat(src.fileno()).st_size > max_bytes:
            raise SubmitRefused(
                f"is over the {max_bytes / 2**20:g} MiB manifest limit "
                "(ENROLLER_MAX_MANIFEST_BYTES)"
            )
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as exc:
            raise SubmitRefused(f"cannot be written to {inbox} ({exc.strerror})") from None
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := src.read(_CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise SubmitRefused(
                            f"grew over the {max_bytes / 2**20:g} MiB manifest limit while read"
                        )
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise SubmitRefused(f"cannot be copied to {inbox} ({exc.strerror})") from None
            raise
    return _Staged(source, tmp, name, digest.hexdigest(), size)


def candidate_names(name: str) -> list[str]:
    """`x.csv`, `x-2.csv`, `x-3.csv`, …: the inbox names tried for one file, in order (pure)."""
    path = PurePath(name)
    return [name, *(f"{path.stem}-{n}{path.suffix}" for n in range(2, MAX_NAME_TRIES + 1))]


def _same_content(path: Path, sha256: str) -> bool:
    """Whether the file already at `path` holds exactly these bytes (a repeated submit)."""
    try:
        return sha256_file(path) == sha256
    except OSError:
        return False  # claimed meanwhile, or not a file: not ours to compare


def _publish(staged: _Staged, inbox: Path) -> tuple[str, bool]:
    """Give the staged copy its real name without replacing anyone's file.

    Returns the name and whether the same bytes were already waiting under it (a repeated
    submit, e.g. a cron retry: not queued twice). `link` fails with EEXIST when the name is
    taken, where `rename` would replace the file: that is what keeps concurrent submitters of
    one name apart. The temporary name is then removed, so the worker's file events see a
    completed rename (an in-progress name deleted, a manifest added) and take it at once.
    """
    for name in candidate_names(staged.name):
        try:
            os.link(staged.tmp, inbox / name)
        except FileExistsError:
            if _same_content(inbox / name, staged.sha256):
                return name, True
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            # A filesystem without hard links: a rename, guarded by a look first.
            if os.path.lexists(inbox / name):
                continue
            os.rename(staged.tmp, inbox / name)
            fsync_dir(inbox)
            return name, False
        os.unlink(staged.tmp)
        fsync_dir(inbox)
        return name, False
    raise SubmitRefused(f"{MAX_NAME_TRIES} names like {staged.name} are already in {inbox}")


# Problems listed per file (folded: one shared by many rows is one line); past them it counts
# (`enroller validate` lists them all).
SHOWN_PROBLEMS = 1000


@dataclass
class _Checked:
    """What validating one staged copy found."""

    refused: list[Problem] = field(default_factory=list)  # why it cannot be queued; [] if it can
    row_problems: list[Problem] = field(default_factory=list)  # of rows that will fail alone
    enrollments: int = 0
    rejected: int = 0


def _check_copy(staged: _Staged, defaults: ManifestDefaults, *, strict: bool) -> _Checked:
    """Parse and preflight the staged copy, exactly as the worker will read it.

    Streamed, like `enroller validate`: a manifest of a million bad rows costs the memory of
    `SHOWN_PROBLEMS` distinct problems, the rest are counted in one last problem.
    """
    source = staged.source
    manifest = open_manifest(staged.tmp, defaults, name=source)
    if manifest.file_problems:
        return _Checked(refused=manifest.file_problems[:SHOWN_PROBLEMS])
    digest = ProblemDigest(SHOWN_PROBLEMS)
    found = _Checked()
    items, _ = manifest.walk()
    checks = Checks.of(defaults)
    for n, (item, pre) in enumerate(preflighted(items, source, checks, bounded_cache())):
        found.enrollments += 1
        if pre is not None and pre.ok:
            continue
        found.rejected += 1
        for problem in item.problems if pre is None else pre.problems:
            digest.add(problem, n)
    problems = digest.problems(found.enrollments)
    if digest.dropped:
        reason = f"and {digest.dropped} more problems (enroller validate {source} lists them all)"
        problems.append(Problem(file=source, reason=reason))
    total, bad = found.enrollments, found.rejected
    if bad == total:
        reason = f"none of its {_enrollments(total)} can run: nothing to queue"
        found.refused = [*problems, Problem(file=source, reason=reason)]
    elif bad and strict:
        reason = f"{bad} of {_enrollments(total)} cannot run, and --strict refuses such a file"
        found.refused = [*problems, Problem(file=source, reason=reason)]
    else:
        found.row_problems = problems
    return found


def _enrollments(n: int) -> str:
    return f"{n} enrollment{'' if n == 1 else 's'}"


def _with_policy(copy: _Staged, existing: str) -> Problem | None:
    """Write `--existing` into the staged copy (what will be published); why not, if refused."""
    try:
        rewritten = write_policy(copy.tmp, existing, copy.name)
    except PolicyRefused as exc:
        return Problem(file=copy.source, reason=str(exc))
    if rewritten is not None:
        copy.sha256, copy.size = rewritten
    return None


def submit_files(
    sources: Sequence[str],
    queue_dir: Path,
    defaults: ManifestDefaults,
    *,
    validate: bool = True,
    store: S3Store | None = None,
    existing: str | None = None,
    strict: bool = False,
) -> SubmitResult:
    """Stage every file, validate every copy, then publish them all, or none if one is refused
    (a file problem, no enrollment that can run, or with `strict` any problem at all).

    `existing` (`--existing`) is written into each copy first (`worker.commands.submit_policy`).
    A source `s3://bucket/key` is read with `store` (default: one on the AWS configuration
    chain, made for this call and closed after it).
    """
    inbox = queue_dir / "inbox"
    result = SubmitResult(inbox=str(inbox))
    if not queue_dir.is_dir():
        result.problems.append(
            Problem(
                file=str(queue_dir),
                reason="the queue folder does not exist (set ENROLLER_QUEUE_DIR or --queue-dir)",
            )
        )
        return result
    try:
        inbox.mkdir(exist_ok=True)
    except OSError as exc:
        result.problems.append(Problem(file=str(inbox), reason=f"cannot be made ({exc.strerror})"))
        return result
    staged: list[_Staged] = []
    with store_for(sources, store) as s3:  # none made unless a source is in S3
        try:
            for source in sources:
                try:
                    copy = _stage(source, inbox, defaults.max_bytes, s3)
                except SubmitRefused as exc:
                    result.problems.append(Problem(file=source, reason=str(exc)))
                    continue
                staged.append(copy)
                if existing is not None and (refused := _with_policy(copy, existing)) is not None:
                    result.problems.append(refused)
                    continue
                if validate:
                    copy.checked = _check_copy(copy, defaults, strict=strict)
                    result.problems.extend(copy.checked.refused)
            if not result.problems:
                for copy in staged:
                    _publish_one(copy, inbox, result)
        finally:
            for copy in staged:
                copy.discard()  # published ones are gone already; refused ones go here
    return result


def _publish_one(copy: _Staged, inbox: Path, result: SubmitResult) -> None:
    """Publish one validated copy; `result` gets it, or the reason it could not be."""
    try:
        name, already = _publish(copy, inbox)
    except (OSError, SubmitRefused) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        result.problems.append(Problem(file=copy.source, reason=f"not submitted: {reason}"))
        return
    result.submitted.append(
        Submitted(
            source=copy.source,
            inbox_name=name,
            job_id=job_id_for(name, copy.sha256),
            sha256=copy.sha256,
            bytes=copy.size,
            already_queued=already,
            enrollments=copy.checked.enrollments,
            rejected=copy.checked.rejected,
            problems=copy.checked.row_problems,
        )
    )


def run_submit(
    sources: Sequence[str],
    queue_dir: Path,
    defaults: ManifestDefaults,
    *,
    validate: bool,
    as_json: bool,
    strict: bool = False,
    out: TextIO | None = None,
    existing: str | None = None,
) -> int:
    """`enroller submit`: 0 when every file is in the inbox (rows that will fail alone are
    printed, not refused), 1 when any problem stopped one."""
    stream = out if out is not None else sys.stdout
    result = submit_files(
        sources, queue_dir, defaults, validate=validate, existing=existing, strict=strict
    )
    if as_json:
        stream.write(result.model_dump_json(indent=2) + "\n")
        return EXIT_OK if result.ok else EXIT_FAILURES
    for problem in result.problems:
        stream.write(f"{problem}\n")
    for item in result.submitted:
        for problem in item.problems:
            stream.write(f"{problem}\n")
        if item.rejected:
            stream.write(
                f"{item.source}: {item.rejected} of {_enrollments(item.enrollments)} will fail "
                "with no request and no credit; the job report, failures CSV and retry "
                "manifest list them (--strict refuses such a file)\n"
            )
        done = "already waiting as" if item.already_queued else "submitted as"
        stream.write(f"{item.source}: {done} {inbox_line(result, item)}: job {item.job_id}\n")
    if not result.ok and not result.submitted:
        stream.write(f"nothing submitted: {len(result.problems)} problem(s)\n")
    return EXIT_OK if result.ok else EXIT_FAILURES


def inbox_line(result: SubmitResult, item: Submitted) -> str:
    return str(Path(result.inbox) / item.inbox_name)
