"""A job's input as a stream: manifest order, preflight one at a time, rejected rows reported
as written, and the report outputs rebuilt from a second walk of the manifest."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from tests.audiogen import write_audio
from tests.manifests import parse_manifest
from worker.job.input import JobInput, load_job_input
from worker.journal.records import EnrollmentOutcome, ErrorInfo, Outcome, Step
from worker.manifest.models import ManifestDefaults, ManifestItem
from worker.manifest.read import stream_manifest

CSV_TEXT = (
    "identity,audio,note\n"
    "ann,ann.wav,first\n"
    "Bad Name,x.wav,rejected by the parser\n"
    "bob,missing.wav,fails preflight\n"
    "ann,ann2.wav,second row of ann\n"
    "cid,cid.wav,fine\n"
)


def defaults(root: Path) -> ManifestDefaults:
    return ManifestDefaults(audio_root=root, owner="o", space="s", model="digital/v1")


def csv_job(tmp_path: Path) -> JobInput:
    for name in ("ann.wav", "ann2.wav", "cid.wav"):
        write_audio(tmp_path / name, 5.0)
    manifest = tmp_path / "batch.csv"
    manifest.write_text(CSV_TEXT)
    return load_job_input(manifest, defaults(tmp_path))


def test_the_stream_is_the_parsed_manifest_in_order_and_starts_over() -> None:
    data = CSV_TEXT.encode()
    stream = stream_manifest(data, "b.csv", defaults(Path("/audio")))
    parsed = parse_manifest(data, "b.csv", defaults(Path("/audio")))
    walked = [(item.source, type(item).__name__) for item in stream.items()]
    # Groups by their first line, rows rejected alone merged in between.
    assert walked == [
        ("lines 2, 5", "Enrollment"),
        ("line 3", "RejectedEnrollment"),
        ("line 4", "Enrollment"),
        ("line 6", "Enrollment"),
    ]
    assert stream.total == parsed.total == 4
    assert [i.source for i in stream.items()] == [s for s, _ in walked]  # a second walk
    assert [e.source for e in parsed.enrollments] == ["lines 2, 5", "line 4", "line 6"]


def test_plan_skips_done_keys_and_preflights_one_at_a_time(tmp_path: Path) -> None:
    job = csv_job(tmp_path)
    plan = job.planned(skip={"o/s/ann/main"})
    first = plan.next_planned()
    assert first is not None and first.key == "invalid@line 3" and first.problems
    bob = plan.next_preflighted()
    assert bob is not None and bob.task is None
    assert 'audio "missing.wav"' in bob.problem_text()
    cid = plan.next_preflighted()
    assert cid is not None and cid.task is not None and cid.task.identity == "cid"
    assert plan.next_preflighted() is None


def test_a_row_the_parser_rejected_is_reported_as_written(tmp_path: Path) -> None:
    """Its report row names the identity, model and audio as given, not an empty identity."""
    job = csv_job(tmp_path)
    plan = job.planned(skip={"o/s/ann/main"})
    rejected = plan.next_preflighted()
    assert rejected is not None and rejected.task is None
    record = rejected.failed(Step.PREFLIGHT, rejected.problem_text())
    assert (record.identity, record.owner, record.space, record.voiceprint) == (
        "Bad Name",
        "o",
        "s",
        "main",
    )
    assert (record.model, record.audios, record.source) == ("digital/v1", [], "line 3")
    missing = plan.next_preflighted()  # valid, but its file fails preflight
    assert missing is not None and missing.task is None
    record = missing.failed(Step.PREFLIGHT, missing.problem_text())
    assert (record.identity, record.model) == ("bob", "digital/v1")


def outcome(key: str, source: str, result: Outcome, reason: str | None = None) -> EnrollmentOutcome:
    owner, space, identity, voiceprint = key.split("/") if "/" in key else ("", "", "", "")
    return EnrollmentOutcome(
        key=key,
        identity=identity,
        voiceprint=voiceprint,
        owner=owner,
        space=space,
        source=source,
        outcome=result.value,
        error=ErrorInfo(step=Step.PREFLIGHT.value, reason=reason) if reason else None,
    )


class Outcomes:
    """The outcome questions `write_outputs` asks (`OutcomeLookup`), over a list."""

    def __init__(self, rows: list[EnrollmentOutcome]) -> None:
        self.rows = {r.key: r for r in reversed(rows)}  # the first word stands

    def count(self, outcomes: Iterable[str] | None = None, *, runnable: bool = False) -> int:
        wanted = set(outcomes) if outcomes is not None else None
        return sum(
            1
            for r in self.rows.values()
            if (wanted is None or r.outcome in wanted)
            and not (runnable and r.key.startswith("invalid@"))
        )

    def status(self, key: str) -> str | None:
        row = self.rows.get(key)
        return row.outcome if row else None

    def outcome(self, key: str) -> EnrollmentOutcome | None:
        return self.rows.get(key)


def test_outputs_repeat_every_row_to_act_on_and_retry_each_one(tmp_path: Path) -> None:
    job = csv_job(tmp_path)
    rows = [
        outcome("o/s/ann/main", "lines 2, 5", Outcome.ENROLLED),
        outcome("invalid@line 3", "line 3", Outcome.FAILED, "bad handle"),
        outcome("o/s/bob/main", "line 4", Outcome.FAILED, "missing"),
        outcome("o/s/cid/main", "line 6", Outcome.CONFLICT, "other model"),
    ]
    failures, retry = tmp_path / "f.csv", tmp_path / "r.json"
    job.write_outputs(Outcomes(rows), failures, retry)

    with failures.open(newline="", encoding="utf-8-sig") as fh:
        table = list(csv.reader(fh))
    assert table[0] == ["identity", "audio", "note", "outcome", "line", "error_step", "error"]
    assert table[1:] == [
        ["Bad Name", "x.wav", "rejected by the parser", "failed", "3", "preflight", "bad handle"],
        ["bob", "missing.wav", "fails preflight", "failed", "4", "preflight", "missing"],
        ["cid", "cid.wav", "fine", "conflict", "6", "preflight", "other model"],
    ]
    again = json.loads(retry.read_text())
    # Every row to act on, whatever the cause: the rejected one as written, to fix in place.
    assert [(e["identity"], e["audios"]) for e in again["enrollments"]] == [
        ("Bad Name", ["x.wav"]),
        ("bob", ["missing.wav"]),
        ("cid", ["cid.wav"]),
    ]
    assert again["enrollments"][0]["comment"] == "failed at preflight (line 3): bad handle"
    assert again["comment"] == "retry of batch.csv: 3 enrollments"


def test_nothing_failed_leaves_no_retry_file_and_skips_the_second_walk(tmp_path: Path) -> None:
    job = csv_job(tmp_path)
    retry = tmp_path / "r.json"
    retry.write_text("{}")  # an older run's

    def walked(builder: object) -> Iterator[ManifestItem]:
        raise AssertionError("the manifest was walked again though nothing failed")

    job.manifest.generate = walked
    ok = [outcome("o/s/ann/main", "lines 2, 5", Outcome.ENROLLED)]
    job.write_outputs(Outcomes(ok), tmp_path / "f.csv", retry)
    assert not retry.exists()
    assert len((tmp_path / "f.csv").read_text().splitlines()) == 1  # the header only


def test_the_failures_csv_is_written_in_the_manifests_delimiter(tmp_path: Path) -> None:
    """What the CSV reader found (`ManifestStream.csv_delimiter`) is what the report uses: a
    semicolon export (European Excel) gets a semicolon failures CSV, with the BOM."""
    job = csv_job(tmp_path)
    job.manifest.csv_delimiter = ";"
    rows = [outcome("o/s/bob/main", "line 4", Outcome.FAILED, "missing; really")]
    failures = tmp_path / "f.csv"
    job.write_outputs(Outcomes(rows), failures, tmp_path / "r.json")
    assert failures.read_bytes().split(b"\r\n") == [
        b"\xef\xbb\xbfidentity;audio;note;outcome;line;error_step;error",
        b'bob;missing.wav;fails preflight;failed;4;preflight;"missing; really"',
        b"",
    ]
