"""Amazon Connect Voice ID enrollment manifests, read as they are (README "Coming from Amazon
Connect Voice ID").

    {"Version": "1.0", "EnrollmentConfig": {"ExistingEnrollmentAction": "SKIP"},
     "SpeakerEnrollmentRequests": [{"RequestId": "r1", "SpeakerId": "Cust 7",
       "AudioSpecifications": [{"S3Uri": "s3://calls/c1.wav", "ChannelId": 1}]}]}

Owns: recognising such a document (`is_voiceid`), Voice ID's own rules (a known field in each
place, the closest one named when it is misspelt; `Version` "1.0"; a unique `RequestId`; 1 to 10
audios; `ChannelId` 0 or 1), and the mapping onto a candidate enrollment, so that every check of
`build` and `cross` applies as to any manifest: `SpeakerId` becomes the identity (as is when it
is a valid handle, else `speaker_handle`'s derived handle, or refused with
`ENROLLER_SPEAKER_HANDLES=strict`), each `S3Uri` an audio path (an `s3://` URI, or a path
relative to the audio root) with `ChannelId` as its channel, `ExistingEnrollmentAction` the
`existing` policy. Each enrollment keeps its `RequestId` and `SpeakerId` for the reports.
Pure, and total: nothing here raises for bad input.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any

from worker.base.text import has_lone_surrogate
from worker.manifest.build import AudioIn, Builder, Candidate
from worker.manifest.cross import build_each
from worker.manifest.keyindex import KeyIndex
from worker.manifest.models import ManifestDefaults, ManifestItem, Problem
from worker.manifest.stream import ManifestStream, broken
from worker.manifest.values import NOT_UNICODE, handle_problem, show

REQUESTS = "SpeakerEnrollmentRequests"
VERSION = "1.0"
MAX_AUDIOS = 10  # Voice ID's limit per request
SPEAKER_ID_MAX = 256
DERIVED_PREFIX = "vid-"
DERIVED_HEX = 32  # 128 bits of sha256: no two SpeakerIds of any customer base share one
TOP_KEYS = ("Version", REQUESTS, "EnrollmentConfig")
REQUEST_KEYS = ("RequestId", "SpeakerId", "AudioSpecifications")
AUDIO_KEYS = ("S3Uri", "ChannelId")
CONFIG_KEYS = ("ExistingEnrollmentAction",)
ACTIONS = {"SKIP": "skip", "OVERWRITE": "overwrite"}
# How problems name our fields in a Voice ID file.
FIELD_NAMES = {"identity": "SpeakerId", "audios": "AudioSpecifications"}
_NO_FRAUD = 'this API has no fraud watchlist (README "Coming from Amazon Connect Voice ID")'


def is_voiceid(keys: Collection[str]) -> bool:
    """Whether a JSON object with these top-level keys is a Voice ID manifest."""
    if "enrollments" in keys or "migrate" in keys:
        return False
    return REQUESTS in keys or "Version" in keys


def request_place(position: int) -> str:
    return f"{REQUESTS}[{position}]"


def unknown_field(name: str, known: Iterable[str]) -> str:
    """`unknown field`, naming the closest known one (case aside) and every known one."""
    known = list(known)
    lowered = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    hint = f'did you mean "{lowered[close[0]]}"? ' if close else ""
    return f"unknown field; {hint}known fields are " + ", ".join(known)


def speaker_handle(speaker_id: str) -> str:
    """The identity handle of a SpeakerId that is not a valid handle: `vid-` and the first 32
    hex digits of the sha256 of its UTF-8 bytes. Deterministic (a re-run, or another worker,
    finds the same customer), none of the id's text in it, and 128 bits: no two ids collide."""
    digest = hashlib.sha256(speaker_id.encode("utf-8")).hexdigest()
    return DERIVED_PREFIX + digest[:DERIVED_HEX]


def stream_voiceid(doc: dict[str, Any], file: str, defaults: ManifestDefaults) -> ManifestStream:
    """A Voice ID manifest already parsed whole (a small file)."""
    requests = doc.get(REQUESTS)
    listed = requests if isinstance(requests, list) else []
    kind = "list" if isinstance(requests, list) else ("missing" if REQUESTS not in doc else "other")
    return voiceid_stream(
        keys=list(doc),
        head={k: doc[k] for k in ("Version", "EnrollmentConfig") if k in doc},
        requests_kind=kind,
        count=len(listed),
        items=lambda: iter(listed),
        file=file,
        defaults=defaults,
        item_at=listed.__getitem__,
    )


def voiceid_stream(
    *,
    keys: Iterable[str],
    head: dict[str, Any],
    requests_kind: str,
    count: int,
    items: Callable[[], Iterable[Any]],
    file: str,
    defaults: ManifestDefaults,
    item_at: Callable[[int], Any] | None = None,
) -> ManifestStream:
    """A Voice ID manifest from its top-level fields and a source of its requests.

    `items()` yields the requests afresh at each call (the parsed document, or a new streaming
    pass over a large file); `item_at`, when the document is in memory, confirms a repeated
    `RequestId` that its hash suggests.
    """
    problems = _head_problems(keys, head, requests_kind, count, file)
    existing = _existing(head.get("EnrollmentConfig"), defaults)
    if problems or existing is None:
        return broken(file, defaults, problems, kind="voiceid")

    def generate(builder: Builder) -> Iterator[ManifestItem]:
        return _items(builder, items(), existing, count, item_at)

    return ManifestStream(
        file=file,
        defaults=defaults,
        kind="voiceid",
        total=count,
        field_names=FIELD_NAMES,
        generate=generate,
        place_of=request_place,
    )


def _existing(config: Any, defaults: ManifestDefaults) -> str | None:
    """The policy: the file's `ExistingEnrollmentAction`, else `ENROLLER_EXISTING` unless that
    is `conflict` (Voice ID has no such action), else Voice ID's default, SKIP."""
    if config is None or (isinstance(config, dict) and "ExistingEnrollmentAction" not in config):
        return "skip" if defaults.existing == "conflict" else defaults.existing
    if not isinstance(config, dict):
        return None
    action = config["ExistingEnrollmentAction"]
    return ACTIONS.get(action.strip().upper()) if isinstance(action, str) else None


def _head_problems(
    keys: Iterable[str], head: dict[str, Any], requests_kind: str, count: int, file: str
) -> list[Problem]:
    """What spoils the whole file: unknown fields, `Version`, `EnrollmentConfig`, no requests."""

    def problem(field: str, reason: str, value: Any = None, *, given: bool = False) -> Problem:
        return Problem(file=file, field=field, value=show(value) if given else None, reason=reason)

    problems = [
        problem(key, unknown_field(key, TOP_KEYS))
        for key in keys
        if key not in TOP_KEYS and key != "comment"  # free text, as in our JSON manifests
    ]
    version = head.get("Version")
    if version is None:
        problems.append(problem("Version", f'is missing; Voice ID manifests say "{VERSION}"'))
    elif version != VERSION:
        problems.append(problem("Version", f'must be "{VERSION}"', version, given=True))
    problems.extend(_config_problems(head.get("EnrollmentConfig"), problem))
    if requests_kind == "missing":
        problems.append(problem(REQUESTS, "is missing"))
    elif requests_kind != "list":
        problems.append(problem(REQUESTS, "must be a list of requests"))
    elif not count:
        problems.append(problem(REQUESTS, "no requests"))
    return problems


def _config_problems(config: Any, problem: Callable[..., Problem]) -> list[Problem]:
    if config is None:
        return []
    if not isinstance(config, dict):
        return [problem("EnrollmentConfig", "must be an object", config, given=True)]
    out = []
    for key in config:
        if key == "FraudDetectionConfig":
            out.append(problem(f"EnrollmentConfig.{key}", _NO_FRAUD))
        elif key not in CONFIG_KEYS:
            out.append(problem(f"EnrollmentConfig.{key}", unknown_field(key, CONFIG_KEYS)))
    if "ExistingEnrollmentAction" in config:
        action = config["ExistingEnrollmentAction"]
        if not (isinstance(action, str) and action.strip().upper() in ACTIONS):
            reason = "must be SKIP or OVERWRITE"
            out.append(
                problem("EnrollmentConfig.ExistingEnrollmentAction", reason, action, given=True)
            )
    return out


def _items(
    builder: Builder,
    requests: Iterable[Any],
    existing: str,
    count: int,
    item_at: Callable[[int], Any] | None,
) -> Iterator[ManifestItem]:
    """Each request as a candidate through `build_each`; the ids go onto what it built."""
    seen = _RequestIds(count, item_at)
    ids: dict[int, tuple[str | None, str | None]] = {}

    def candidates() -> Iterator[Candidate]:
        for i, request in enumerate(requests):
            cand, request_id, speaker_id = _candidate(builder, request, i, existing, seen)
            ids[i] = (request_id, speaker_id)
            yield cand

    for item in build_each(builder, candidates(), expected=count):
        request_id, speaker_id = ids.pop(item.position, (None, None))
        if request_id is None and speaker_id is None:
            yield item
        else:
            yield item.model_copy(update={"request_id": request_id, "speaker_id": speaker_id})


class _RequestIds:
    """The RequestIds seen so far, as 64-bit hashes (flat memory for a million), a hit
    confirmed on the earlier request where the document is in memory. In a streamed file a hit
    is trusted, as `cross` trusts one: one chance in ~3·10⁷ of a false repeat per million
    ids."""

    def __init__(self, count: int, item_at: Callable[[int], Any] | None) -> None:
        self._index = KeyIndex(capacity=count)
        self._item_at = item_at

    def first(self, request_id: str, position: int) -> int | None:
        """Where `request_id` was listed first, or None (and it is remembered here)."""
        earlier = self._index.setdefault(request_id, position)
        if earlier == position:
            return None
        if self._item_at is not None:
            request = self._item_at(earlier)
            if not (isinstance(request, dict) and request.get("RequestId") == request_id):
                return None  # another id's hash: this one is new (and stays unremembered)
        return earlier


def _candidate(
    builder: Builder, request: Any, i: int, existing: str, seen: _RequestIds
) -> tuple[Candidate, str | None, str | None]:
    """One request as a candidate enrollment, with its RequestId and SpeakerId (or None)."""
    place = request_place(i)
    cand = Candidate(source=place, place=place, position=i, values={}, audios=[])

    def add(field: str, value: Any, reason: str, *, given: bool = True) -> None:
        cand.preset.append(builder.problem(place, field, value, reason, given=given))

    if not isinstance(request, dict):
        add("", request, "must be a JSON object with RequestId, SpeakerId, AudioSpecifications")
        cand.broken = True
        return cand, None, None
    for key in request:
        if key not in REQUEST_KEYS:
            add(key, None, unknown_field(key, REQUEST_KEYS), given=False)
    request_id = _request_id(request, i, add, seen)
    speaker_id = _speaker(request, cand, builder.defaults, add)
    cand.values["existing"] = existing
    _audios(request, cand, add)
    if "identity" not in cand.values:
        cand.broken = True  # the SpeakerId's problem is said; nothing else to name it by
    return cand, request_id, speaker_id


def _request_id(
    request: dict[str, Any], i: int, add: Callable[..., None], seen: _RequestIds
) -> str | None:
    value = request.get("RequestId")
    if value is None:
        add("RequestId", None, "is missing", given=False)
        return None
    if not isinstance(value, str) or not value.strip():
        add("RequestId", value, "must be non-empty text")
        return None
    if has_lone_surrogate(value):
        add("RequestId", value, NOT_UNICODE)
        return None
    first = seen.first(value, i)
    if first is not None:
        add("RequestId", value, f"is already used at {request_place(first)}; RequestIds are unique")
        return None
    return value


def _speaker(
    request: dict[str, Any], cand: Candidate, defaults: ManifestDefaults, add: Callable[..., None]
) -> str | None:
    """The SpeakerId as written; the identity goes into `cand.values` when there is one."""
    value = request.get("SpeakerId")
    if value is None:
        add("SpeakerId", None, "is missing", given=False)
        return None
    if not isinstance(value, str) or not value:
        add("SpeakerId", value, "must be non-empty text")
        return None
    if has_lone_surrogate(value):
        add("SpeakerId", value, NOT_UNICODE)
        return None
    if len(value) > SPEAKER_ID_MAX:
        add("SpeakerId", value, f"is {len(value)} characters; Voice ID allows {SPEAKER_ID_MAX}")
        return None
    reason = handle_problem(value)
    if reason is None:
        cand.values["identity"] = value
    elif defaults.speaker_handles == "strict":
        add("SpeakerId", value, f"{reason} (ENROLLER_SPEAKER_HANDLES=strict; derive makes one)")
    else:
        cand.values["identity"] = speaker_handle(value)
    return value


def _audios(request: dict[str, Any], cand: Candidate, add: Callable[..., None]) -> None:
    """AudioSpecifications: 1 to 10 objects of S3Uri and ChannelId (0 or 1)."""
    specs = request.get("AudioSpecifications")
    if specs is None:
        add("AudioSpecifications", None, "is missing", given=False)
        cand.audios_invalid = True
        return
    if not isinstance(specs, list):
        add("AudioSpecifications", specs, "must be a list of {S3Uri, ChannelId}")
        cand.audios_invalid = True
        return
    if not specs:
        add("AudioSpecifications", None, "none listed; Voice ID takes 1 to 10", given=False)
        cand.audios_invalid = True
        return
    if len(specs) > MAX_AUDIOS:
        add(
            "AudioSpecifications", None, f"{len(specs)} listed; Voice ID takes 1 to 10", given=False
        )
        cand.audios_invalid = True
        return
    for j, spec in enumerate(specs):
        audio = _audio(spec, f"AudioSpecifications[{j}]", cand.place, add)
        if audio is not None:
            cand.audios.append(audio)
    if not cand.audios:
        cand.audios_invalid = True  # each one's problem is said


def _audio(spec: Any, field: str, place: str, add: Callable[..., None]) -> AudioIn | None:
    if not isinstance(spec, dict):
        add(field, spec, "must be an object with S3Uri and ChannelId")
        return None
    ok = True
    for key in spec:
        if key not in AUDIO_KEYS:
            add(f"{field}.{key}", None, unknown_field(key, AUDIO_KEYS), given=False)
            ok = False
    uri = spec.get("S3Uri")
    if uri is None:
        add(f"{field}.S3Uri", None, "is missing", given=False)
        ok = False
    elif not isinstance(uri, str):
        add(f"{field}.S3Uri", uri, "must be text: s3://bucket/key, or a path in the audio root")
        ok = False
    channel = spec.get("ChannelId")
    if channel is not None and (isinstance(channel, bool) or channel not in (0, 1)):
        add(f"{field}.ChannelId", channel, "must be 0 or 1")
        ok = False
    if not ok:
        return None
    return AudioIn(uri, field, place, channel=None if channel is None else int(channel))
