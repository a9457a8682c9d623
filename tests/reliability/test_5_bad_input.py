"""Bad input at volume: property-based manifests and CSVs, valid and broken, in one queue.

Proves that no input takes the worker down (exit 0 or 1, never 2, no traceback), that every
file that is not a manifest lands in failed/ with an error file, that every broken row ends as a
failed row with a reason (also when no row of a file can run: that file gets its report too,
issue 30), and that every valid row beside them is enrolled. Examples vary from run to run
(tests/fuzzing.py): `make test` tries a few, `make fuzz` many; a failing one is kept in
.hypothesis/ and replayed first next time.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.audiogen import write_audio, write_garbage
from tests.emulator_harness import running_emulator
from tests.fuzzing import examples, timeout_for
from tests.reliability.support import (
    MODEL,
    worker_env,
    write_world,
)
from tests.support import assert_no_crash, drop, run_worker

# Row kinds: one valid, the rest broken in a way local preflight or the server must catch.
VALID = "valid"
ROW_KINDS = [VALID, VALID, "bad_handle", "missing_audio", "garbage_audio", "escapes_root", "quiet"]
FILE_BROKEN = [
    "text",
    "binary",
    "wrong_shape",
    "csv_without_identity",
    "empty",
]
WRONG_SHAPES: list[Any] = [
    [],
    {},
    None,
    3,
    "enrollments",
    {"enrollments": []},
    {"enrollments": "x"},
    {"enrollments": [1, 2]},
    {"enrollments": [{"identity": 5, "audios": 7}]},
    {"identity": ["x"], "audios": "a.wav"},
]

bad_handles = st.builds(
    lambda head, bad, tail: head + bad + tail,
    st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=6),
    st.sampled_from([*"_/!.:@ #%é", "\t", "Ü", "--"]),
    st.text(max_size=12),
)
rows = st.lists(st.tuples(st.sampled_from(ROW_KINDS), bad_handles), min_size=1, max_size=4)
row_manifest = st.tuples(st.just("rows"), st.sampled_from(["json", "csv"]), rows)
broken_file = st.tuples(
    st.just("file"),
    st.sampled_from(FILE_BROKEN),
    st.tuples(st.text(max_size=120), st.binary(max_size=200), st.sampled_from(WRONG_SHAPES)),
)
queues = st.lists(st.one_of(row_manifest, broken_file), min_size=2, max_size=5)


@dataclass
class Expect:
    name: str  # file name in inbox/
    broken_file: bool
    rows: list[tuple[str, str]]  # (kind, identity as written)
    # A broken file that still reads as a manifest (enrollments that are all bad): a report
    # with every row failed, not failed/.
    reported: bool = False


def _reads_as_a_manifest(shape: Any) -> bool:
    """A JSON shape with enrollments, however bad each one: it runs to its report."""
    if not isinstance(shape, dict):
        return False
    listed = shape.get("enrollments")
    if "enrollments" in shape:
        return isinstance(listed, list) and bool(listed)
    return True  # the single-enrollment form, `{}` included: one enrollment, missing everything


_counter = itertools.count()


def _materialize(queue: Path, spec: list[Any]) -> list[Expect]:
    audio = queue / "audio"
    outside = queue.parent / "outside.wav"
    write_audio(outside, voice_s=5.0, samplerate=8000)
    expects = []
    for m, (what, kind, payload) in enumerate(spec):
        if what == "file":
            name = f"f{m:02d}.{'csv' if kind in ('binary', 'csv_without_identity') else 'json'}"
            text, binary, shape = payload
            content: str | bytes = {
                "text": "\x00" + text,  # never valid JSON
                "binary": b"\xff\xfe" + binary,
                "wrong_shape": json.dumps(shape),
                "csv_without_identity": "audio,model\na.wav,phone/v1\n",
                "empty": "",
            }[kind]
            drop(queue, name, content)
            reported = kind == "wrong_shape" and _reads_as_a_manifest(shape)
            expects.append(Expect(name, True, [], reported))
            continue
        fmt, row_specs = kind, payload
        written: list[tuple[str, str]] = []
        table: list[dict[str, str]] = []
        for r, (row_kind, bad_handle) in enumerate(row_specs):
            identity = bad_handle if row_kind == "bad_handle" else f"r{m}-{r}-{next(_counter)}"
            file = f"{identity if row_kind != 'bad_handle' else f'bh{m}-{r}'}.wav"
            seq = next(_counter)
            if row_kind in (VALID, "bad_handle"):
                write_audio(audio / file, voice_s=4.6 + seq / 1000, samplerate=8000)
            elif row_kind == "garbage_audio":
                write_garbage(audio / file)
            elif row_kind == "quiet":  # decodes; too little voice: the local voice check refuses it
                write_audio(audio / file, voice_s=1.0 + seq / 1000, silence_s=4.0, samplerate=8000)
            elif row_kind == "escapes_root":
                file = "../outside.wav"
            written.append((row_kind, identity))
            table.append({"identity": identity, "audio": file})
        name = f"m{m:02d}.{fmt}"
        if fmt == "json":
            doc = {
                "model": MODEL,
                "enrollments": [{"identity": t["identity"], "audios": [t["audio"]]} for t in table],
            }
            drop(queue, name, doc)
        else:
            out = io.StringIO()
            writer = csv.DictWriter(out, ["identity", "audio", "model"], lineterminator="\n")
            writer.writeheader()
            writer.writerows({**t, "model": MODEL} for t in table)
            drop(queue, name, out.getvalue())
        expects.append(Expect(name, False, written))
    return expects


def _job_files(folder: Path, name: str, suffix: str) -> list[Path]:
    stem = Path(name).stem
    pattern = re.compile(rf"{re.escape(stem)}-[0-9a-f]{{10}}{re.escape(suffix)}")
    return [p for p in folder.iterdir() if pattern.fullmatch(p.name)]


# What each broken row's reason must say: the row is reported as failed for *its* fault.
REASONS = {
    "bad_handle": r"identity|handle",
    "missing_audio": r"does not exist",
    "garbage_audio": r"decod|not an audio|audio format|cannot be read",
    "escapes_root": r"leads outside the audio root",
    "quiet": r"voice|speech",
}


def _source(fmt: str, index: int, rows: list[tuple[str, str]]) -> str:
    """Where the report says a row was: JSON enrollments[i]; in a CSV the line the row starts
    on, after the header and after the line breaks inside earlier rows' quoted identities (a
    generated bad handle may hold one; the worker counts \n, \r and \r\n as one each)."""
    if fmt == "json":
        return f"enrollments[{index}]"
    breaks = sum(i.count("\n") + i.count("\r") - i.count("\r\n") for _, i in rows[:index])
    return f"line {index + 2 + breaks}"


def _check(queue: Path, expects: list[Expect]) -> None:
    for exp in expects:
        failed = _job_files(queue / "failed", exp.name, ".error.json")
        reports = _job_files(queue / "reports", exp.name, ".report.json")
        assert len(failed) + len(reports) == 1, (exp, failed, reports)
        if exp.reported:
            assert reports, f"{exp.name}: bad enrollments are reported, not failed/ ({failed})"
            report = json.loads(reports[0].read_text())
            assert report["total"] and report["counts"]["failed"] == report["total"], report
            assert report["requests"] == 0, report  # nothing sent for rows that cannot run
            continue
        if exp.broken_file:
            assert failed, f"{exp.name}: a broken file must land in failed/ ({reports})"
            error = json.loads(failed[0].read_text())
            assert error["file"] == exp.name and error["problems"], (exp.name, error)  # says why
            continue
        fmt = Path(exp.name).suffix[1:]
        valid = [ident for kind, ident in exp.rows if kind == VALID]
        assert not failed, f"{exp.name}: a manifest of rows, bad or good, is reported ({failed})"
        report = json.loads(reports[0].read_text())
        by_source = {row["source"]: row for row in report["enrollments"]}
        assert len(by_source) == len(report["enrollments"]) == len(exp.rows), (exp, report)
        for r, (kind, ident) in enumerate(exp.rows):
            row = by_source.get(_source(fmt, r, exp.rows))
            assert row is not None, (exp.name, r, kind, sorted(by_source))  # every row is there
            if kind == VALID:
                assert row["identity"] == ident and row["outcome"] == "enrolled", (exp.name, row)
                continue
            # Every broken row: failed, with a reason that names its own fault.
            assert row["outcome"] == "failed", (exp.name, kind, row)
            reason = (row["error"] or {}).get("reason") or ""
            assert re.search(REASONS[kind], reason, re.IGNORECASE), (exp.name, kind, row)
        assert report["counts"]["enrolled"] == len(valid), (exp.name, report["counts"])
        assert report["counts"]["failed"] == len(exp.rows) - len(valid), (exp.name, report)


async def _run_example(root: Path, private: Path, spec: list[Any]) -> None:
    queue = root / "queue"
    expects = _materialize(queue, spec)
    world = write_world(private)  # holds the key: kept out of the swept artifacts
    async with running_emulator(config=world) as emu:
        env = worker_env(queue, emu.base_url, rate_limit=500)
        code = await run_worker(env, root / "worker.base.log")
    assert_no_crash(root / "worker.base.log")
    assert code in (0, 1), (code, (root / "worker.base.log").read_text()[-2000:])
    inbox = [p for p in (queue / "inbox").iterdir() if not p.name.startswith(".")]
    assert inbox == [], inbox  # every file was taken
    _check(queue, expects)


def _example(artifacts: Path, private: Path, spec: list[Any]) -> None:
    root = artifacts / f"bad-input-{next(_counter):04d}"
    root.mkdir(parents=True)
    anyio.run(_run_example, root, private, spec)


COMMON = dict(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SHORT = examples(default=3, fuzz=60)  # ≈ 3 s each: a worker process and an emulator
FULL = examples(default=30, fuzz=300)


@pytest.mark.timeout(timeout_for(SHORT, 10))
@settings(max_examples=SHORT, **COMMON)  # type: ignore[arg-type]
@given(spec=queues)
def test_bad_input_short(artifacts: Path, private: Path, spec: list[Any]) -> None:
    _example(artifacts, private, spec)


@pytest.mark.slow
@pytest.mark.timeout(timeout_for(FULL, 10))
@settings(max_examples=FULL, **COMMON)  # type: ignore[arg-type]
@given(spec=queues)
def test_bad_input_full(artifacts: Path, private: Path, spec: list[Any]) -> None:
    _example(artifacts, private, spec)
