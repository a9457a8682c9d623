"""JSON manifests: a job (`{"enrollments": [...]}`, with job-level defaults) or one enrollment.

Owns: what the JSON keys mean (a misspelt key such as `minaudios` is an error, since one silently
ignored would enroll with the wrong settings; `comment` is free text and ignored), the job-level
defaults (checked once, as file problems: a bad default spoils every row), and the two ways a
document is read: parsed whole (`stream_json`, a small file: exact error positions, NaN
tolerated) or as a stream from disk (`stream_json_file`, from `read.STREAM_JSON_MIN_BYTES` on;
the syntax is `worker.manifest.jsonscan`'s). The values' rules are `build`'s; nothing here reads a
file except through `jsonscan`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from worker.audio.inspect import model_problem
from worker.base.fsutil import open_regular
from worker.manifest.build import AudioIn, Builder, Candidate
from worker.manifest.cross import build_each
from worker.manifest.jsonscan import JsonScanError, iter_enrollments, scan_job
from worker.manifest.migration import stream_migration
from worker.manifest.models import ManifestDefaults, ManifestItem, Problem
from worker.manifest.policy import policy_problem
from worker.manifest.stream import ManifestStream, broken
from worker.manifest.values import handle_problem, min_audios, model_text, show, unknown_reason

_JOB_DEFAULT_KEYS = (
    *("owner", "space", "model", "minAudios", "createIdentity"),
    *("existing", "retire"),  # what becomes of a customer already enrolled (policy.py)
)
_JOB_KEYS = frozenset({*_JOB_DEFAULT_KEYS, "enrollments"})
_ENROLLMENT_KEYS = frozenset(
    {
        "owner",
        "space",
        "identity",
        "voiceprint",
        "alias",
        "audios",
        "model",
        "minAudios",
        "createIdentity",
        "existing",
        "retire",
    }
)
_IGNORED_KEYS = frozenset({"comment"})
_NOT_OBJECT = 'must be a JSON object: a job {"enrollments": [...]} or one enrollment'
_JSON_NAMES: dict[str, str] = {}


def stream_json(text: str, file: str, defaults: ManifestDefaults) -> ManifestStream:
    """A JSON job (`{"enrollments": [...]}`) or a single enrollment (`{"identity": ...}`), its
    enrollments built only as they are iterated.

    The decoded document is kept (about 400 bytes per enrollment): it is what `items()` walks.
    """
    doc = _loads(text, file)
    if isinstance(doc, Problem):
        return broken(file, defaults, [doc])
    if not isinstance(doc, dict):
        return broken(file, defaults, [Problem(file=file, reason=_NOT_OBJECT)])
    if "enrollments" in doc:
        return _stream_job_document(doc, file, defaults)
    if "migrate" in doc:
        return stream_migration(doc, file, defaults)
    return _single(doc, file, defaults)


def _loads(text: str, file: str) -> Any:
    """The document, or the problem that spoils the file."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        return Problem(
            file=file,
            place=f"line {exc.lineno} column {exc.colno}",
            reason=f"not valid JSON: {exc.msg}",
        )
    except RecursionError:
        return Problem(file=file, reason="not valid JSON: nested too deeply")
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        return Problem(file=file, reason=f"not valid JSON: {exc}")


def _single(doc: dict[str, Any], file: str, defaults: ManifestDefaults) -> ManifestStream:
    """The shorthand of one enrollment, its fields at the top level."""
    unknown = sorted(set(doc) - _ENROLLMENT_KEYS - _IGNORED_KEYS)

    def generate(builder: Builder) -> Iterator[ManifestItem]:
        cand = _candidate(file, doc, {}, "enrollment", "", 0)
        cand.preset.extend(
            Problem(file=file, field=key, reason=unknown_reason(_ENROLLMENT_KEYS))
            for key in unknown
        )
        return build_each(builder, [cand])

    return ManifestStream(
        file=file,
        defaults=defaults,
        kind="single",
        total=1,
        field_names=_JSON_NAMES,
        generate=generate,
    )


def _stream_job_document(
    doc: dict[str, Any], file: str, defaults: ManifestDefaults
) -> ManifestStream:
    """A JSON job already parsed whole (a small file): earlier items can be looked at again."""
    enrollments = doc["enrollments"]
    listed = enrollments if isinstance(enrollments, list) else []
    return _stream_job(
        keys=list(doc),
        job_defaults={k: doc[k] for k in _JOB_DEFAULT_KEYS if k in doc},
        enrollments_kind="list" if isinstance(enrollments, list) else "other",
        count=len(listed),
        items=lambda: iter(listed),
        file=file,
        defaults=defaults,
        item_at=listed.__getitem__,
    )


def stream_json_file(
    path: Path, fh: IO[bytes], file: str, defaults: ManifestDefaults, whole: Callable[[], Any]
) -> ManifestStream:
    """A large JSON job as a stream: defaults from a first pass, enrollments from a second.

    `whole()` reads the file the ordinary way: one enrollment of this size is odd, but allowed.
    """
    try:
        scan = scan_job(fh)
    except JsonScanError as exc:
        return broken(file, defaults, [Problem(file=file, reason=str(exc))])
    if scan.top_level != "object":
        return broken(file, defaults, [Problem(file=file, reason=_NOT_OBJECT)])
    if "enrollments" not in scan.keys:
        return whole()
    doc_defaults = {k: v for k, v in scan.scalars.items() if k in _JOB_KEYS}
    for key in set(scan.keys) & (_JOB_KEYS - {"enrollments"}) - set(doc_defaults):
        doc_defaults[key] = _NOT_SCALAR  # a list or object where a default belongs

    def items() -> Iterator[Any]:
        with open_regular(path) as again:
            yield from iter_enrollments(again)

    return _stream_job(
        keys=scan.keys,
        job_defaults=doc_defaults,
        enrollments_kind=scan.enrollments or "missing",
        count=scan.count,
        items=items,
        file=file,
        defaults=defaults,
    )


class _NotScalar:
    """A default given as a list or object: shown as such, refused by the checks."""

    def __repr__(self) -> str:
        return "a list or object"


_NOT_SCALAR = _NotScalar()


def _stream_job(
    *,
    keys: Iterable[str],
    job_defaults: dict[str, Any],
    enrollments_kind: str,
    count: int,
    items: Callable[[], Iterable[Any]],
    file: str,
    defaults: ManifestDefaults,
    item_at: Callable[[int], Any] | None = None,
) -> ManifestStream:
    """A JSON job from its top-level keys and defaults and a source of its enrollments.

    `items()` yields the enrollments afresh at each call: from the parsed document of a small
    file, or from a new streaming pass over a large one. `item_at`, when the document is in
    memory, confirms a duplicate on the real keys (`cross`).
    """
    job_defaults = {k: job_defaults[k] for k in _JOB_DEFAULT_KEYS if k in job_defaults}
    problems = _job_problems(keys, job_defaults, enrollments_kind, count, file)
    if problems:
        return broken(file, defaults, problems, kind="job")

    def generate(builder: Builder) -> Iterator[ManifestItem]:
        lookup = None if item_at is None else _lookup(file, defaults, job_defaults, item_at)
        cands = (_job_candidate(file, item, job_defaults, i) for i, item in enumerate(items()))
        return build_each(builder, cands, lookup=lookup, expected=count)

    return ManifestStream(
        file=file,
        defaults=defaults,
        kind="job",
        total=count,
        field_names=_JSON_NAMES,
        generate=generate,
    )


def _lookup(
    file: str,
    defaults: ManifestDefaults,
    job_defaults: dict[str, Any],
    item_at: Callable[[int], Any],
) -> Callable[[int], ManifestItem]:
    """The `i`-th enrollment built again, alone (to confirm a hash hit in `cross`)."""
    scratch = Builder(file, defaults, _JSON_NAMES)
    return lambda i: scratch.build(_job_candidate(file, item_at(i), job_defaults, i))


def _job_problems(
    keys: Iterable[str],
    job_defaults: dict[str, Any],
    enrollments_kind: str,
    count: int,
    file: str,
) -> list[Problem]:
    """What spoils a whole job: unknown keys, bad defaults, no list of enrollments."""
    problems = [
        Problem(file=file, field=key, reason=unknown_reason(_JOB_KEYS))
        for key in sorted(set(keys) - _JOB_KEYS - _IGNORED_KEYS)
    ]
    problems.extend(_check_job_defaults(job_defaults, file))
    if enrollments_kind != "list":
        problems.append(
            Problem(file=file, field="enrollments", reason="must be a list of enrollments")
        )
    elif not count:
        problems.append(Problem(file=file, field="enrollments", reason="no enrollments"))
    return problems


def _job_candidate(file: str, item: Any, job_defaults: dict[str, Any], i: int) -> Candidate:
    """The `i`-th item of a job's `enrollments`, with the job's defaults under it."""
    place = f"enrollments[{i}]"
    if not isinstance(item, dict):
        cand = Candidate(source=place, place=place, position=i, values={}, audios=[], broken=True)
        reason = "must be a JSON object"
        cand.preset.append(Problem(file=file, place=place, value=show(item), reason=reason))
        return cand
    cand = _candidate(file, item, job_defaults, place, place, i)
    for key in sorted(set(item) - _ENROLLMENT_KEYS - _IGNORED_KEYS):
        reason = unknown_reason(_ENROLLMENT_KEYS)
        cand.preset.append(Problem(file=file, place=place, field=key, reason=reason))
    return cand


def _check_job_defaults(values: dict[str, Any], file: str) -> list[Problem]:
    problems: list[Problem] = []

    def add(name: str, value: Any, reason: str) -> None:
        problems.append(Problem(file=file, field=name, value=show(value), reason=reason))

    for name in ("owner", "space"):
        if name in values:
            value = values[name]
            reason = handle_problem(value) if isinstance(value, str) else "must be text"
            if reason:
                add(name, value, reason)
    if "model" in values:
        model = model_text(values["model"])
        if isinstance(model, tuple):
            add("model", model[0], model[1])
        elif reason := model_problem(model):
            add("model", model, reason)
    if "minAudios" in values and isinstance(reason := min_audios(values["minAudios"]), str):
        add("minAudios", values["minAudios"], reason)
    if "createIdentity" in values and not isinstance(values["createIdentity"], bool):
        add("createIdentity", values["createIdentity"], "must be true or false")
    for name in ("existing", "retire"):
        if name in values and (reason := policy_problem(name, values[name])):
            add(name, values[name], reason)
    return problems


def _candidate(
    file: str,
    item: dict[str, Any],
    job_defaults: dict[str, Any],
    source: str,
    place: str,
    position: int,
) -> Candidate:
    values = dict(job_defaults)
    values.update({k: item[k] for k in _ENROLLMENT_KEYS - {"audios"} if k in item})
    cand = Candidate(source=source, place=place, position=position, values=values, audios=[])
    audios_raw = item.get("audios")
    if isinstance(audios_raw, list):
        cand.audios = [AudioIn(raw, f"audios[{j}]", place) for j, raw in enumerate(audios_raw)]
    elif audios_raw is not None:
        # A lone string is a common slip; say so rather than guessing what was meant.
        cand.audios_invalid = True
        cand.preset.append(
            Problem(
                file=file,
                place=place,
                field="audios",
                value=show(audios_raw),
                reason="must be a list of paths",
            )
        )
    return cand
