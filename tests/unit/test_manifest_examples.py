"""The committed example manifests stay valid: they parse cleanly and pass preflight."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from tests.audiogen import write_audio
from tests.manifests import read_manifest
from worker.commands.validate import run_validate
from worker.manifest.models import ManifestDefaults

EXAMPLES = Path(__file__).resolve().parents[2] / "jobs" / "examples"
FILES = sorted(p for p in EXAMPLES.iterdir() if p.suffix in {".json", ".csv"})


def test_there_is_one_example_per_format() -> None:
    assert [p.name for p in FILES] == ["batch.csv", "nightly-job.json", "single.json"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_example_parses_cleanly(path: Path, tmp_path: Path) -> None:
    parsed = read_manifest(path, ManifestDefaults(audio_root=tmp_path))
    assert parsed.ok and not parsed.warnings, [str(p) for p in parsed.problems]
    assert parsed.enrollments


def test_examples_validate_with_the_audio_their_readme_lists(tmp_path: Path) -> None:
    readme = (EXAMPLES / "README.md").read_text("utf-8")
    listed = list(dict.fromkeys(re.findall(r"`(cust-\d+/[\w.-]+)`", readme)))
    for i, name in enumerate(listed):
        rate = 16000 if name.endswith("studio.ogg") else 8000
        write_audio(tmp_path / name, voice_s=5.0 + i / 4, samplerate=rate)  # distinct contents
    out = io.StringIO()
    code = run_validate([str(EXAMPLES)], ManifestDefaults(audio_root=tmp_path), True, out)
    result = json.loads(out.getvalue())
    assert result["ok"] and code == 0, [p for f in result["files"] for p in f["errors"]]
    assert sum(f["audio_files"] for f in result["files"]) == 9
