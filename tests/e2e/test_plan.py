"""`enroller plan` against an actual run: the requests the emulator counted, the credits it took.

The figures come from `worker.enrollment.requests`; when the engine's request plan changes and that
module does not, these tests fail.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tests.audiogen import write_audio
from tests.emulator_harness import EmulatorHandle, running_emulator
from tests.support import make_settings, run_once
from worker.cli import main
from worker.commands.plan import plan_paths, run_plan
from worker.manifest.models import ManifestDefaults

# (identity, audio files): one, two and three audios; 60 single-audio enrollments make the
# usage check read two pages.
SHAPES = [(f"one-{i}", 1) for i in range(60)] + [("two-0", 2), ("two-1", 2), ("three-0", 3)]


def _manifest(queue: Path, name: str) -> Path:
    lines = ["identity,audio,min_audios"]
    for identity, k in SHAPES:
        for j in range(k):
            write_audio(queue / "audio" / f"{identity}-{j}.wav", 5.0 + j * 0.25, 0.2, 8000)
            lines.append(f"{identity},{identity}-{j}.wav,{k}")
    lines.append("Not A Handle,one-0-0.wav,1")  # rejected by preflight: costs nothing
    lines.append("ghost,never-recorded.wav,1")
    path = queue.parent / name
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_plan_matches_an_actual_run(tmp_path: Path, emulator: EmulatorHandle) -> None:
    queue = tmp_path / "queue"
    manifest = _manifest(queue, "tonight.csv")
    settings = make_settings(queue, emulator.base_url)
    plan = plan_paths([str(manifest)], ManifestDefaults.from_settings(settings), 20.0)
    [figures] = plan.files
    assert (figures.enrollments, figures.runnable, figures.rejected) == (65, 63, 2)
    assert figures.audio_files == 60 + 4 + 3

    (queue / "inbox").mkdir(parents=True, exist_ok=True)
    manifest.rename(queue / "inbox" / manifest.name)
    assert await run_once(settings) == 1  # two rows fail preflight
    stats = await emulator.stats()

    actual = stats["requests"]["total"]
    assert abs(plan.totals.requests - actual) <= 0.02 * actual, (plan.totals, stats["requests"])
    assert plan.totals.credits == stats["credits_used"]["demo"] == 63
    assert figures.upload_bytes == stats["uploads"]["bytes_received"]


async def test_plan_credits_are_per_owner_and_exact(tmp_path: Path) -> None:
    """Two owners in one manifest: each owner's credits, each usage check, as the run spends."""
    queue = tmp_path / "queue"
    for name in ("a", "b", "c"):
        write_audio(queue / "audio" / f"{name}.wav", 5.0, 0.0, 8000)
    doc = {
        "model": "phone/v1",
        "enrollments": [
            {"identity": "a", "audios": ["a.wav"], "owner": "demo", "space": "main"},
            {"identity": "b", "audios": ["b.wav"], "owner": "acme", "space": "onboarding"},
            {"identity": "c", "audios": ["c.wav"], "owner": "acme", "space": "onboarding"},
        ],
    }
    path = tmp_path / "two-owners.json"
    path.write_text(json.dumps(doc))
    async with running_emulator() as emu:
        settings = make_settings(queue, emu.base_url)
        plan = plan_paths([str(path)], ManifestDefaults.from_settings(settings), 20.0)
        (queue / "inbox").mkdir(parents=True)
        path.rename(queue / "inbox" / path.name)
        assert await run_once(settings) == 0
        stats = await emu.stats()
    assert plan.totals.credits_by_owner == {"acme": 2, "demo": 1}
    assert plan.totals.credits_by_owner == stats["credits_used"]
    assert plan.totals.requests == stats["requests"]["total"]


def test_plan_prints_rejected_rows_and_json(tmp_path: Path) -> None:
    root = tmp_path / "audio"
    write_audio(root / "ok.wav", 5.0, 0.0, 8000)
    path = tmp_path / "m.csv"
    path.write_text("identity,audio\nok,ok.wav\nBad Name,ok.wav\n")
    defaults = ManifestDefaults(audio_root=root, owner="demo", space="main")
    out = io.StringIO()
    assert run_plan([str(path)], defaults, 10.0, as_json=False, out=out) == 1
    text = out.getvalue()
    assert f'{path} line 3: identity "Bad Name": handles are lowercase' in text
    assert "2 enrollments: 1 to run, 1 rejected by preflight" in text
    assert "5 requests (0 for the usage check)" not in text  # the usage check is counted
    assert "6 requests (1 for the usage check), 1 credit (demo 1)" in text

    out = io.StringIO()
    run_plan([str(path)], defaults, 10.0, as_json=True, out=out)
    doc = json.loads(out.getvalue())
    assert doc["ok"] is False
    assert doc["totals"]["requests"] == 7  # with the worker start's GET /user
    assert doc["totals"]["seconds_at_rate_limit"] == pytest.approx(0.7)
    assert doc["files"][0]["problems"][0]["place"] == "line 3"


def test_plan_command_makes_no_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No API is reachable at the configured URL: plan still answers, so it called nothing."""
    root = tmp_path / "audio"
    write_audio(root / "ok.wav", 5.0, 0.0, 8000)
    path = tmp_path / "m.csv"
    path.write_text("identity,audio\nok,ok.wav\n")
    code = main(
        [
            "plan",
            str(path),
            "--audio-root",
            str(root),
            "--owner",
            "demo",
            "--space",
            "main",
            "--api-url",
            "http://127.0.0.1:9/v1",
            "--rate-limit",
            "4",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "at 4 requests/s (ENROLLER_RATE_LIMIT)" in out


def test_plan_names_enrollments_near_the_voice_rule(tmp_path: Path) -> None:
    root = tmp_path / "audio"
    write_audio(root / "ok.wav", 5.0, 0.0, 8000)
    write_audio(root / "near.wav", 4.0, 1.0, 8000)  # a little short: uploaded, server decides
    write_audio(root / "quiet.wav", 1.0, 5.0, 8000)  # clearly short: refused, costs nothing
    path = tmp_path / "m.csv"
    path.write_text("identity,audio\nok,ok.wav\nnear,near.wav\nquiet,quiet.wav\n")
    defaults = ManifestDefaults(audio_root=root, owner="demo", space="main")
    [figures] = plan_paths([str(path)], defaults, 10.0).files
    assert (figures.runnable, figures.voice_near, figures.rejected, figures.credits) == (2, 1, 1, 2)
    [problem] = figures.problems
    assert problem.place == "line 4" and "(measured locally) is below" in problem.reason
    [warning] = figures.warnings
    assert warning.place == "line 3" and "within 15% of the 4.50 s needed" in warning.reason


async def test_plan_rerun_figure_matches_a_rerun(tmp_path: Path, emulator: EmulatorHandle) -> None:
    """Issue 30: a re-run of enrolled identities costs what plan says (3 requests each, a POST
    among them), not "at most 2 reads"."""
    queue = tmp_path / "queue"
    lines = ["identity,audio,minAudios"]
    for i in range(8):
        write_audio(queue / "audio" / f"c{i}.wav", 5.0 + i * 0.1, 0.2, 8000)
        lines.append(f"c{i},c{i}.wav,1")
    for j in range(2):
        write_audio(queue / "audio" / f"two-{j}.wav", 6.0 + j * 0.1, 0.2, 8000)
        lines.append(f"two,two-{j}.wav,2")
    text = "\n".join(lines) + "\n"
    settings = make_settings(queue, emulator.base_url)
    (queue / "inbox").mkdir(parents=True, exist_ok=True)
    (queue / "inbox" / "first.csv").write_text(text)
    assert await run_once(settings) == 0
    before = (await emulator.stats())["requests"]["total"]
    copy = tmp_path / "again.csv"
    copy.write_text(text + "\n")  # other bytes: another job, the same enrollments
    plan = plan_paths([str(copy)], ManifestDefaults.from_settings(settings), 20.0)
    (queue / "inbox" / "again.csv").write_bytes(copy.read_bytes())
    assert await run_once(settings) == 0
    stats = await emulator.stats()
    assert stats["requests"]["total"] - before == plan.totals.rerun_requests == 1 + 9 * 3
    out = io.StringIO()
    run_plan(
        [str(copy)],
        ManifestDefaults.from_settings(settings),
        20.0,
        as_json=False,
        out=out,
    )
    assert "a re-run with every enrollment already done: 28 requests, 0 credits" in out.getvalue()
