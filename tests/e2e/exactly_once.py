"""Checks through the API (and the emulator's counters) that a run did everything exactly once.

`verify_exactly_once(api, stats, expected)` asserts, for the voiceprints in `expected`
(`{(identity, voiceprint): [audio paths]}`): one audio (and one upload) per file and
identity, each voiceprint computed and holding exactly its manifest's audios, and exactly one
usage record per voiceprint, so that nothing was computed from a wrong set.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from tests.emulator_harness import ApiClient

SPACE = "/spaces/demo/main"
Expected = dict[tuple[str, str], list[Path]]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def _all(api: ApiClient, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        reply = await api.get(path, params={"page": page, "page-size": 50, **params})
        assert reply.status == 200, reply.body
        items += reply.body
        if page >= int(reply.headers.get("Page-Total", "1")):
            return items
        page += 1


def _file_of(audio: dict[str, Any]) -> tuple[str, str]:
    identity = (audio.get("identity") or {}).get("handle", "")
    return identity, (audio.get("alias") or "").removeprefix("sha256:")


async def verify_exactly_once(api: ApiClient, stats: dict[str, Any], expected: Expected) -> None:
    files = {(identity, sha(p)) for (identity, _), paths in expected.items() for p in paths}
    audios = await _all(api, f"{SPACE}/audios")
    made = sorted(key for a in audios if (key := _file_of(a)) in files)
    assert len(made) == len(files), f"one audio per file and identity, got {made}"
    uploads = stats["uploads"]
    assert uploads["accepted"] == len(files), uploads  # one upload per file, none twice
    assert all(n == 1 for n in uploads["attempts_per_audio"].values()), uploads

    records = await _all(api, "/user/records/voiceprint")
    billed = sorted(
        (r["voiceprint"]["identity"]["handle"], r["voiceprint"]["handle"]) for r in records
    )
    assert billed == sorted(expected), "one usage record per voiceprint, and no other"
    for (identity, voiceprint), paths in expected.items():
        vp = await api.get(f"{SPACE}/voiceprints/{identity}/{voiceprint}")
        assert vp.status == 200 and vp.body["state"] == "computed", vp.body
        held = await _all(api, f"{SPACE}/voiceprints/{identity}/{voiceprint}/audios")
        holds = sorted(a["alias"].removeprefix("sha256:") for a in held)
        assert holds == sorted(sha(p) for p in paths), f"{identity}/{voiceprint} holds {holds}"
