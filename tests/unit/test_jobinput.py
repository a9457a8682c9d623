"""A job's input as a stream: manifest order, preflight one at a time, the nothing-runnable
head, and the report outputs rebuilt from a second walk of the manifest."""

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


def test_head_stops_at_the_first_runnable_enrollment(tmp_path: Path) -> None:
    job = csv_job(tmp_path)
    head, runnable = job.planned(skip={"o/s/ann/main"}).head()
    assert runnable
    assert [p.key for p in head] == ["invalid@line 3", "o/s/bob/main", "o/s/cid/main"]


def test_head_without_anything_runnable_holds_every_problem(tmp_path: Path) -> None:
    manifest = tmp_path / "none.json"
    manifest.write_text(json.dumps({"enrollments": [{"identity": "a", "audios": ["no.wav"]}]}))
    head, runnable = load_job_input(manifest, defaults(tmp_path)).planned().head()
    assert not runnable
    assert [str(p) for p in head[0].problems] == [
        'none.json enrollments[0]: audios[0] "no.wav": does not exist '
        f"({tmp_path / 'no.wav'}; audio root {tmp_path})"
    ]


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


def test_outputs_repeat_the_failed_rows_and_retry_only_what_can_run_again(tmp_path: Path) -> None:
    job = csv_job(tmp_path)
    rows = [
        outcome("o/s/ann/main", "lines 2, 5", Outcome.ENROLLED),
        outcome("invalid@line 3", "line 3", Outcome.FAILED, "bad handle"),
        outcome("o/s/bob/main", "line 4", Outcome.FAILED, "missing"),
        outcome("o/s/cid/main", "line 6", Outcome.CONFLICT, "other model"),
    ]
    failures, retry = tmp_path / "f.csv", tmp_path / "r.json"
    job.write_outputs(Outcomes(rows), failures, retry)

    with failures.open(newline="") as fh:
        table = list(csv.reader(fh))
    assert table[0][:3] == ["identity", "audio", "note"]
    assert [r[:3] for r in table[1:]] == [
        ["Bad Name", "x.wav", "rejected by the parser"],
        ["bob", "missing.wav", "fails preflight"],
        ["cid", "cid.wav", "fine"],
    ]
    again = json.loads(retry.read_text())
    # A conflict is not retried blindly, and a row the parser rejected cannot run as written.
    assert [(e["identity"], e["audios"]) for e in again["enrollments"]] == [
        ("bob", ["missing.wav"])
    ]


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
