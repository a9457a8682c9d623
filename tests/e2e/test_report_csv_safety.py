"""A manifest whose cells start a spreadsheet formula: the failures CSV defuses them, the JSON
report and the retry manifest keep them exactly (issue 21, CSV injection / CWE-1236).

The worker runs as a real process against the emulator; every row fails before any API call
(bad identity or missing audio), so the failures CSV echoes each dangerous cell.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import anyio

from tests.audiogen import write_audio
from tests.emulator_harness import running_emulator
from tests.support import WORKER, worker_env
from worker.base.csvsafe import FORMULA_STARTS

DANGEROUS = sorted(FORMULA_STARTS)  # = + - @ TAB CR


def _rows() -> list[dict[str, str]]:
    """Per dangerous character, two rows, every echoed cell starting with it: one with a bad
    identity, one with a good identity and a missing audio file."""
    rows = []
    for i, c in enumerate(DANGEROUS):
        for identity in (f"{c}cmd|' /C calc'!A{i}", f"ok-{i}"):
            rows.append(
                {
                    "identity": identity,
                    "audio": f"{c}1+1-{i}.wav",
                    "alias": f'{c}HYPERLINK("http://evil","x{i}")',
                    "note": f"{c}SUM(A1:A{i})\r\n=2+2",
                }
            )
    return rows


def _manifest(rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["identity", "audio", "alias", "note"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


async def test_failures_csv_escapes_formula_cells_and_json_keeps_them(tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    (queue / "inbox").mkdir(parents=True)
    write_audio(queue / "audio" / "good.wav", voice_s=5.0, samplerate=8000)
    rows = _rows()
    good = {"identity": "good-0001", "audio": "good.wav", "alias": "Ada", "note": "fine"}
    tmp = queue / "inbox" / ".evil.tmp"
    tmp.write_text(_manifest([good, *rows]), encoding="utf-8", newline="")
    os.replace(tmp, queue / "inbox" / "evil.csv")
    async with running_emulator() as emulator:
        result = await anyio.run_process(
            [*WORKER, "run", "--once"], env=worker_env(queue, emulator.base_url), check=False
        )
    assert result.returncode == 1, result.stderr.decode()[-2000:]
    assert b"Traceback" not in result.stderr

    (failures,) = (queue / "reports").glob("evil*.failures.csv")
    with failures.open(encoding="utf-8-sig", newline="") as fh:
        got = list(csv.DictReader(fh))
    columns = ("identity", "audio", "alias", "note")
    escaped = [
        tuple(v if v.startswith("ok-") else "'" + v for v in (r[c] for c in columns)) for r in rows
    ]
    # Rows come in the order their enrollments finished, not the manifest's.
    assert sorted(tuple(row[c] for c in columns) for row in got) == sorted(escaped)
    assert not any(row["error"].startswith(tuple(FORMULA_STARTS)) for row in got)

    # The JSON report keeps what the worker read (the manifest trims surrounding whitespace,
    # so a leading tab or CR is gone there), never with the spreadsheet quote.
    (report,) = (queue / "reports").glob("evil*.report.json")
    enrollments = json.loads(report.read_text(encoding="utf-8"))["enrollments"]
    reasons = {e["error"]["reason"] for e in enrollments if e["error"]}
    for want in rows:
        if want["identity"].startswith("ok-"):
            wanted = f'audio "{want["audio"].strip()}"'
            assert any(e["identity"] == want["identity"] for e in enrollments)
        else:
            wanted = f'identity "{want["identity"].strip()}"'
        assert any(r.startswith(wanted) for r in reasons), (wanted, reasons)
    assert not any("\"'" in r for r in reasons)

    # The retry manifest is input for the worker: the values exactly as read, no quote added.
    (retry,) = (queue / "reports").glob("evil*.retry.json")
    again = {e["identity"]: e for e in json.loads(retry.read_text(encoding="utf-8"))["enrollments"]}
    # Every row is there (a bad identity too, as written, to be fixed in the retry file).
    for want in rows:
        assert again[want["identity"].strip()]["alias"] == want["alias"].strip()
        assert again[want["identity"].strip()]["audios"] == [want["audio"].strip()]
    assert len(again) == len(rows)
