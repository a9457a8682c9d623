"""The shared test helpers (tests/support.py) do what the tests rely on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fakeclock import FakeClock
from tests.support import (
    drop,
    job_manifest,
    make_job_queue,
    make_queue,
    names,
    wait_for,
    wait_until,
)


async def test_wait_for_returns_the_value_and_takes_async_predicates() -> None:
    seen = iter([0, "", "ready"])
    assert await wait_for(lambda: next(seen), 5, step=0) == "ready"

    async def later() -> int:
        return 7

    assert await wait_for(later, 5) == 7


async def test_wait_for_fails_with_what_it_waited_for() -> None:
    with pytest.raises(AssertionError, match=r"not within 0.05 s: the moon"):
        await wait_for(lambda: False, 0.05, "the moon")


def test_wait_until_is_the_same_for_sync_tests() -> None:
    seen = iter([None, [], [1]])
    assert wait_until(lambda: next(seen), 5, step=0) == [1]
    with pytest.raises(AssertionError, match=r"not within 0.05 s: the moon"):
        wait_until(lambda: False, 0.05, "the moon", step=0.01)


def test_drop_is_a_maildir_rename_unless_told(tmp_path: Path) -> None:
    queue = make_queue(tmp_path / "q", ["a", "b"], folders=("inbox", "done"))
    assert sorted(p.name for p in (queue / "audio").iterdir()) == ["a.wav", "b.wav"]
    assert (queue / "audio" / "a.wav").read_bytes() != (queue / "audio" / "b.wav").read_bytes()
    path = drop(queue, "job.json", job_manifest(["a"], "phone/v1"))
    assert json.loads(path.read_text())["model"] == "phone/v1"
    assert names(queue / "inbox") == ["job.json"] and not list((queue / "inbox").glob(".*"))
    drop(queue, "raw.csv", b"identity,audio\n", maildir=False)
    assert names(queue / "inbox") == ["job.json", "raw.csv"] and names(queue / "done") == []


def test_same_audio_for_all_with_no_step(tmp_path: Path) -> None:
    queue = make_queue(tmp_path, ["a", "b"], step_s=0)
    assert (queue / "audio" / "a.wav").read_bytes() == (queue / "audio" / "b.wav").read_bytes()


def test_make_job_queue_refuses_what_settings_would_ignore(tmp_path: Path) -> None:
    queue = make_job_queue(tmp_path, FakeClock(), lease_ttl=2.0)
    assert queue.lease_ttl == 2.0
    with pytest.raises(AssertionError, match=r"not settings: \['lease_tll'\]"):
        make_job_queue(tmp_path, lease_tll=2.0)
