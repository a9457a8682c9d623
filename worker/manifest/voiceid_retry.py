"""The retry manifest of a Voice ID input: a Voice ID manifest of the requests to run again.

Owns: one `Enrollment` written back as a Voice ID request (its RequestId and SpeakerId as the
input wrote them, each audio as a path relative to the audio root with its ChannelId) and the
whole file written as the requests come (`StreamedObject`), so memory stays flat for any
count. `EnrollmentConfig` carries the policy the requests ran with; the model is not a Voice
ID field, so a retry takes `ENROLLER_MODEL` as the first run did. Pure but for writing `out`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from worker.base.streamout import StreamedObject, TextWriter
from worker.manifest.models import Enrollment
from worker.manifest.voiceid import REQUESTS, VERSION

_ACTION = {"skip": "SKIP", "overwrite": "OVERWRITE"}


def voiceid_request(enrollment: Enrollment) -> dict[str, Any]:
    """One enrollment as the Voice ID request it was read from."""
    specs: list[dict[str, Any]] = []
    for name, channel in zip(enrollment.audio_names, enrollment.channels, strict=True):
        spec: dict[str, Any] = {"S3Uri": name}
        if channel is not None:
            spec["ChannelId"] = channel
        specs.append(spec)
    return {
        "RequestId": enrollment.request_id or enrollment.source,
        "SpeakerId": enrollment.speaker_id or enrollment.identity,
        "AudioSpecifications": specs,
    }


def write_voiceid_retry(
    out: TextWriter, enrollments: Iterable[Enrollment], comment: str | None
) -> None:
    """A Voice ID manifest of `enrollments`, written as they come.

    The policy is the first enrollment's (one file has one); a manifest of none says SKIP.
    """
    doc = StreamedObject(out, indented=True)
    if comment is not None:
        doc.value("comment", comment)
    doc.value("Version", VERSION)
    it = iter(enrollments)
    first = next(it, None)
    action = _ACTION.get(first.existing if first is not None else "skip", "SKIP")
    doc.value("EnrollmentConfig", {"ExistingEnrollmentAction": action})
    doc.array(REQUESTS)
    if first is not None:
        doc.add_json(json.dumps(voiceid_request(first), ensure_ascii=False))
    for enrollment in it:
        doc.add_json(json.dumps(voiceid_request(enrollment), ensure_ascii=False))
    doc.close()
    out.write("\n")
