"""Local audio preflight against the model table; real files from tests/audiogen.py in tmp_path."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.audiocheck import preflight_audio
from tests.audiogen import write_audio, write_garbage, write_signal
from tests.unprivileged import rerun_unprivileged
from worker.audio import inspect as audio
from worker.audio.files import AudioUnreadable
from worker.audio.formats import ACCEPTED_TEXT
from worker.audio.inspect import (
    CONVERT_HINT,
    MODELS,
    inspect_audio,
    model_problem,
    model_warning,
    requirement_problems,
    resolves_inside,
)
from worker.base.fsutil import sha256_file, sha256_stream


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "audio"
    r.mkdir()
    return r


def test_the_model_table_is_the_contracts() -> None:
    assert {m: (r.max_duration_s, r.min_samplerate, r.deprecated) for m, r in MODELS.items()} == {
        "default/v1": (120.0, 8000, True),
        "phone/v1": (120.0, 8000, False),
        "digital/v1": (120.0, 16000, False),
    }
    assert audio.DEFAULT_MODEL == "phone/v1"
    assert MODELS["phone/v1"].min_voice_per_audio_s(3) == pytest.approx(1.5)


def test_unknown_and_deprecated_models() -> None:
    assert model_problem("phone/v1") is None
    assert model_problem("studio/v2") == (
        "unknown model; known models are default/v1, digital/v1, phone/v1"
    )
    assert model_warning("default/v1") == "default/v1 is deprecated; use phone/v1"
    assert model_warning("digital/v1") is None and model_warning("nope/v1") is None


@pytest.mark.parametrize(
    ("name", "make", "model", "min_audios", "expected"),
    [
        ("ok.wav", lambda p: write_audio(p, 5.0, 0, 16000), "digital/v1", 1, []),
        ("ok.flac", lambda p: write_audio(p, 4.0, 1.0, 8000), "phone/v1", 1, []),
        ("ok.ogg", lambda p: write_audio(p, 5.0, 0, 16000), "default/v1", 1, []),
        (
            "x.wav",
            lambda p: write_audio(p, 5.0, 0, 1000),
            "digital/v1",
            1,
            ["sample rate 1000 Hz is below the 16000 Hz that digital/v1 needs"],
        ),
        ("narrow.wav", lambda p: write_audio(p, 5.0, 0, 8000), "phone/v1", 1, []),
        (
            "narrow.wav",
            lambda p: write_audio(p, 5.0, 0, 8000),
            "digital/v1",
            1,
            ["sample rate 8000 Hz is below the 16000 Hz that digital/v1 needs"],
        ),
        (
            "long.wav",
            lambda p: write_audio(p, 180.0, 0, 8000),
            "phone/v1",
            1,
            ["180.0 s is longer than the 120 s maximum of phone/v1"],
        ),
        ("edge.wav", lambda p: write_audio(p, 120.0, 0, 8000), "phone/v1", 1, []),
        (
            "short.wav",
            lambda p: write_audio(p, 1.0, 0, 16000),
            "phone/v1",
            2,
            [
                "1.00 s is shorter than the 2.25 s of voice that phone/v1 needs per audio "
                "with minAudios 2"
            ],
        ),
        ("short-ok.wav", lambda p: write_audio(p, 1.0, 0, 16000), "phone/v1", 5, []),
        (
            "empty.wav",
            lambda p: write_signal(p, np.zeros(0, dtype=np.float32), 16000),
            "phone/v1",
            1,
            ["contains no audio (0 frames)"],
        ),
        (
            "zero.wav",
            lambda p: p.write_bytes(b""),
            "phone/v1",
            1,
            ["is empty (0 bytes)"],
        ),
        (
            "garbage.wav",
            write_garbage,
            "phone/v1",
            1,
            ["cannot be decoded as audio (FFmpeg: Invalid data found when processing input)"],
        ),
        (
            "a.mp3",
            lambda p: write_audio(p, 5.0, 0, 16000),
            "phone/v1",
            1,
            [f"format mp3 is not accepted by the API (accepted: {ACCEPTED_TEXT}); {CONVERT_HINT}"],
        ),
        (
            "a.m4a",
            lambda p: write_audio(p, 5.0, 0, 16000),
            "phone/v1",
            1,
            [
                f"format m4a (aac) is not accepted by the API "
                f"(accepted: {ACCEPTED_TEXT}); {CONVERT_HINT}"
            ],
        ),
        (
            "u8.wav",
            lambda p: write_audio(p, 5.0, 0, 16000, codec="pcm_u8"),
            "phone/v1",
            1,
            [
                f"format wav (pcm_u8) is not accepted by the API "
                f"(accepted: {ACCEPTED_TEXT}); {CONVERT_HINT}"
            ],
        ),
        ("missing.wav", lambda p: None, "phone/v1", 1, ["does not exist"]),
        ("folder.wav", lambda p: p.mkdir(), "phone/v1", 1, ["is a directory, not an audio file"]),
    ],
)
def test_preflight_table(
    root: Path,
    name: str,
    make: Callable[[Path], object],
    model: str,
    min_audios: int,
    expected: list[str],
) -> None:
    path = root / name
    make(path)
    check = preflight_audio(path, root, model, min_audios, name=name)
    assert list(check.errors) == expected
    assert check.ok is (not expected)
    if not expected:
        assert check.facts is not None
        assert check.facts.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert str(check) == f"{name}: ok"
    else:
        assert str(check) == "; ".join(f"{name}: {e}" for e in expected)


def test_facts_of_a_good_file(root: Path) -> None:
    path = write_audio(root / "ann" / "1.flac", 2.0, 0.5, 16000)
    facts = inspect_audio(path, root)
    assert facts.path == path.resolve()
    assert (facts.format, facts.codec, facts.samplerate, facts.channels, facts.frames) == (
        "flac",
        "flac",
        16000,
        1,
        40000,
    )
    assert facts.complete
    assert facts.duration == pytest.approx(2.5)
    assert facts.size == path.stat().st_size
    assert facts.alias == f"sha256:{facts.sha256}"


def test_a_problem_per_broken_requirement(root: Path) -> None:
    path = write_audio(root / "bad.wav", 130.0, 0, 4000)
    assert preflight_audio(path, root, "digital/v1").errors == (
        "sample rate 4000 Hz is below the 16000 Hz that digital/v1 needs",
        "130.0 s is longer than the 120 s maximum of digital/v1",
    )


def test_files_over_the_upload_limit(root: Path) -> None:
    path = write_audio(root / "a.wav", 5.0)
    facts = inspect_audio(path, root)
    assert requirement_problems(facts, "phone/v1", max_bytes=1024) == [
        f"{facts.size / 2**20:.1f} MiB is larger than the 0 MiB the API accepts"
    ]


def test_an_unknown_model_checks_only_what_does_not_need_the_model(root: Path) -> None:
    path = write_audio(root / "a.wav", 500.0, 0, 1000)
    assert preflight_audio(path, root, "nope/v1").errors == ()


# --- containment -------------------------------------------------------------------------------


def test_a_symlink_leading_outside_the_root_is_never_opened(root: Path, tmp_path: Path) -> None:
    outside = write_audio(tmp_path / "secret" / "x.wav", 5.0)
    (root / "link.wav").symlink_to(outside)
    (root / "dir").symlink_to(outside.parent, target_is_directory=True)
    for name in ("link.wav", "dir/x.wav"):
        assert preflight_audio(root / name, root, "phone/v1").errors == (
            "leads outside the audio root",
        )


def test_a_symlink_inside_the_root_is_followed(root: Path) -> None:
    target = write_audio(root / "real" / "a.wav", 5.0)
    (root / "alias.wav").symlink_to(Path("real") / "a.wav")
    check = preflight_audio(root / "alias.wav", root, "phone/v1")
    assert check.ok and check.facts is not None and check.facts.path == target.resolve()


def test_a_root_reached_through_a_symlink_still_contains_its_files(tmp_path: Path) -> None:
    real = tmp_path / "real-root"
    write_audio(real / "a.wav", 5.0)
    (tmp_path / "root-link").symlink_to(real, target_is_directory=True)
    assert preflight_audio(tmp_path / "root-link" / "a.wav", tmp_path / "root-link", "phone/v1").ok


def test_dot_dot_paths_are_judged_after_resolution(root: Path, tmp_path: Path) -> None:
    write_audio(tmp_path / "x.wav", 5.0)
    assert not resolves_inside(root / ".." / "x.wav", root)
    assert resolves_inside(root / "sub" / ".." / "x.wav", root)


def test_a_symlink_loop(root: Path) -> None:
    (root / "a.wav").symlink_to(root / "b.wav")
    (root / "b.wav").symlink_to(root / "a.wav")
    check = preflight_audio(root / "a.wav", root, "phone/v1")
    assert not check.ok and len(check.errors) == 1


def test_an_unreadable_file(root: Path, request: pytest.FixtureRequest) -> None:
    if rerun_unprivileged(request):
        return  # root ignores mode bits: the test just ran as uid 1000 in a user namespace
    path = write_audio(root / "locked.wav", 5.0)
    path.chmod(0)
    try:
        with pytest.raises(AudioUnreadable, match="permission denied"):
            inspect_audio(path, root)
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize("size", [0, 1, 1000, 1 << 20, (1 << 20) + 7, 3 * (1 << 20)])
def test_streaming_sha256(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    with path.open("rb") as fh:
        assert sha256_stream(fh, chunk_bytes=7) == (hashlib.sha256(data).hexdigest(), size)
