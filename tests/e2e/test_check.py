"""`enroller check` against the emulator: a good key, a bad key, a foreign space, an unknown model,
credits short of the plan. Reads only: the emulator creates nothing.

`check` runs its own event loop (as the CLI does), so each test runs it in a thread beside the
emulator's loop.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from tests.audiogen import write_audio
from tests.emulator_harness import DEMO_KEY, EmulatorHandle, running_emulator
from tests.misbehaving import misbehaving, status_with
from worker.commands.check import run_check
from worker.config.settings import Settings

SECRET_LOOKING_KEY = "sk-live-0123456789abcdef"


def _settings(base_url: str, root: Path, **kw: Any) -> Settings:
    values: dict[str, Any] = dict(
        api_url=base_url, api_key=DEMO_KEY, audio_root=root, queue_dir=root.parent / "queue"
    )
    values.update(kw)
    return Settings(**values)


async def _check(settings: Settings, paths: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    code = await anyio.to_thread.run_sync(lambda: run_check(settings, paths, False, out))
    return code, out.getvalue()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    audio = tmp_path / "audio"
    for name in ("a", "b", "c"):
        write_audio(audio / f"{name}.wav", 5.0, 0.2, 8000)
    return audio


def _manifest(folder: Path, name: str, doc: object) -> str:
    path = folder / name
    path.write_text(json.dumps(doc))
    return str(path)


def _enrollments(owner: str, space: str, model: str = "phone/v1") -> dict[str, Any]:
    return {
        "owner": owner,
        "space": space,
        "model": model,
        "enrollments": [{"identity": n, "audios": [f"{n}.wav"]} for n in ("a", "b", "c")],
    }


async def test_good_key_space_model_and_credits(
    tmp_path: Path, root: Path, emulator: EmulatorHandle
) -> None:
    path = _manifest(tmp_path, "m.json", _enrollments("acme", "onboarding"))
    code, out = await _check(_settings(emulator.base_url, root), [path])
    assert code == 0, out
    lines = out.splitlines()
    assert "ok   key: works: user demo (orgs: acme)" in lines
    assert "ok   space acme/onboarding: reachable (0 identities)" in lines
    assert "ok   model phone/v1: exists" in lines
    assert "ok   credits acme: unlimited; the plan needs 3" in lines
    assert lines[-1] == "all checks passed"
    stats = await emulator.stats()
    assert stats["created"] == {"identities": 0, "audios": 0, "voiceprints": 0, "computes": 0}
    assert set(stats["requests"]["by_route"]) == {
        "GET /user",
        "GET /spaces/{owner}/{space}/identities",
        "GET /models",
        "GET /owners/{owner}/credits",
    }


async def test_bad_key_fails_and_is_never_printed(
    tmp_path: Path, root: Path, emulator: EmulatorHandle
) -> None:
    path = _manifest(tmp_path, "m.json", _enrollments("demo", "main"))
    settings = _settings(emulator.base_url, root, api_key=SECRET_LOOKING_KEY)
    code, out = await _check(settings, [path])
    assert code == 1
    [key_line] = [line for line in out.splitlines() if " key: " in line]
    assert key_line.startswith("FAIL key: refused by the API")
    assert "401" in key_line
    assert SECRET_LOOKING_KEY not in out


async def test_foreign_space_is_access_denied(
    tmp_path: Path, root: Path, emulator: EmulatorHandle
) -> None:
    path = _manifest(tmp_path, "m.json", _enrollments("other", "private"))
    code, out = await _check(_settings(emulator.base_url, root), [path])
    assert code == 1
    assert (
        "FAIL space other/private: access denied: other is neither you (demo) nor one of "
        "your orgs (acme)"
    ) in out
    assert "credits other" not in out  # not ours to read


async def test_missing_space_and_unknown_model(
    tmp_path: Path, root: Path, emulator: EmulatorHandle
) -> None:
    path = _manifest(tmp_path, "m.json", _enrollments("acme", "nowhere", model="fancy/v2"))
    code, out = await _check(_settings(emulator.base_url, root), [path])
    assert code == 1
    assert (
        "FAIL model fancy/v2: the API has no such model (default/v1, digital/v1, phone/v1)"
    ) in out
    # The rows were rejected locally (unknown model), so no space was planned; the settings'
    # space is checked instead.
    settings = _settings(emulator.base_url, root, owner="acme", space="nowhere")
    code, out = await _check(settings, [])
    assert code == 1
    assert "FAIL space acme/nowhere: no such space in owner acme" in out


async def test_credits_short_of_the_plan(tmp_path: Path, root: Path) -> None:
    path = _manifest(tmp_path, "m.json", _enrollments("demo", "main"))
    async with running_emulator(credits=2) as emulator:
        code, out = await _check(_settings(emulator.base_url, root), [path])
    assert code == 1
    assert "FAIL credits demo: 2 left, the plan needs 3: 1 computes would be refused" in out


def test_check_without_credentials_exits_2(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(api_url="http://127.0.0.1:9/v1", audio_root=root)
    assert run_check(settings, [], as_json=False) == 2
    assert "check needs credentials" in capsys.readouterr().err


async def test_check_says_what_is_true_when_rows_are_rejected(
    tmp_path: Path, root: Path, emulator: EmulatorHandle
) -> None:
    """Issue 30 point 3: rejected rows are never "all checks passed", and every row rejected
    is said as such, not as "spaces: none to check"."""
    doc = _enrollments("acme", "onboarding")
    doc["enrollments"].append({"identity": "Cust 7", "audios": ["a.wav"]})
    path = _manifest(tmp_path, "some.json", doc)
    code, out = await _check(_settings(emulator.base_url, root), [path])
    assert code == 1
    assert "all checks passed" not in out
    assert out.splitlines()[-1] == (
        "the API checks passed, but 1 of 4 enrollments are rejected by preflight and will "
        "fail with no request (enroller validate says why)"
    )
    settings = _settings(emulator.base_url, root)
    buffer = io.StringIO()
    assert await anyio.to_thread.run_sync(lambda: run_check(settings, [path], True, buffer)) == 1
    doc = json.loads(buffer.getvalue())
    assert doc["ok"] is False and doc["rejected_enrollments"] == 1
    bad = {
        "owner": "acme",
        "space": "onboarding",
        "model": "phone/v1",
        "enrollments": [{"identity": "a", "audios": ["nope.wav"]}],
    }
    code, out = await _check(
        _settings(emulator.base_url, root), [_manifest(tmp_path, "b.json", bad)]
    )
    assert code == 1
    assert "spaces: none to check" not in out
    assert (
        "FAIL manifests: the one enrollment is rejected by preflight, so no space is left to "
        "check (enroller validate says why)"
    ) in out.splitlines()


async def test_an_api_url_without_v1_gets_a_hint(
    tmp_path: Path, root: Path, emulator: EmulatorHandle
) -> None:
    bare = emulator.base_url.removesuffix("/v1")
    path = _manifest(tmp_path, "m.json", _enrollments("acme", "onboarding"))
    code, out = await _check(_settings(bare, root), [path])
    assert code == 1
    [key_line] = [line for line in out.splitlines() if " key: " in line]
    assert key_line.startswith("FAIL key: the server has no GET /user (")
    assert key_line.endswith(
        f"; ENROLLER_API_URL must include the API's version: try {emulator.base_url}"
    )


async def test_a_long_retry_after_is_reported_not_waited(root: Path) -> None:
    # Issue 27 point 3: a one-shot command never waits the API's 999999 s; it says so.
    async with running_emulator() as emu, misbehaving(emu.root_url) as proxy:
        proxy.on("GET", r"/v1/user$", status_with(429, {"Retry-After": "999999"}, "later"))
        code, text = await _check(_settings(proxy.base_url, root), [])
    assert code == 1 and "the API asked to wait until" in text, text
