"""Moving a space to a new model (issue 28): a migration manifest against the emulator over real
sockets. The new voiceprints are made from the audio already on the server: the request log
shows no audio created or uploaded, one compute per identity, and the old voiceprints handled
as `retire` says."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from tests.e2e.test_existing_enrollments import records_of, server_view
from tests.emulator_harness import EmulatorHandle, running_emulator
from tests.misbehaving import misbehaving, status_with
from tests.support import (
    drop,
    job_manifest,
    make_queue,
    make_settings,
    names,
    report_of,
    run_once,
)
from worker.base.exitcodes import EXIT_TEMPFAIL
from worker.commands.check import run_check
from worker.commands.plan import run_plan
from worker.enrollment.requests import MIGRATED_REQUESTS, migration_requests
from worker.enrollment.swap_rules import retired_handle
from worker.manifest.models import ManifestDefaults

IDS = [f"mig-{i}" for i in range(7)]


def migration(identities: Any, to: str = "phone/v1", **fields: Any) -> dict[str, Any]:
    return {"migrate": {"from": "default/v1", "to": to}, "identities": identities, **fields}


async def enrolled_on_default(queue: Path, emu: EmulatorHandle) -> dict[str, str]:
    drop(queue, "first.json", job_manifest(IDS, "default/v1"))
    assert await run_once(make_settings(queue, emu.base_url)) == 0
    return {i: (await server_view(emu.base_url, i))["main"][0] for i in IDS}


def sent(emu: EmulatorHandle, since: int) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in emu.server.requests[since:]]


@pytest.mark.parametrize("retire", ["delete", "keep"])
async def test_a_space_moves_from_default_to_phone_without_uploading(
    tmp_path: Path, retire: str
) -> None:
    queue = make_queue(tmp_path / "queue", IDS, folders=())
    async with running_emulator() as emu:
        old_ids = await enrolled_on_default(queue, emu)
        since = len(emu.server.requests)
        drop(queue, "move.json", migration("all", retire=retire))
        assert await run_once(make_settings(queue, emu.base_url)) == 0

        report = report_of(queue, "move")
        assert report["counts"]["replaced"] == len(IDS), report["counts"]
        # As `enroller plan` counts them: per identity, plus one rename question, one page of
        # identities and one page of usage records for the job.
        assert report["requests"] == len(IDS) * migration_requests(1, retire) + 3
        assert report["credits_spent"] == len(IDS) and report["usage"]["found"] == len(IDS)
        log = sent(emu, since)
        assert not [p for m, p in log if m == "POST" and p.endswith("/audios")]
        assert not [p for m, p in log if p.endswith("/file")]
        assert len([p for m, p in log if p.endswith(":compute")]) == len(IDS)
        for identity in IDS:
            view = await server_view(emu.base_url, identity)
            new_id, model, state, audios = view["main"]
            assert (model, state) == ("phone/v1", "computed") and new_id != old_ids[identity]
            retired = retired_handle("main", old_ids[identity])
            if retire == "keep":
                assert view[retired][1] == "default/v1" and view[retired][3] == audios
            else:
                assert set(view) == {"main"}
        assert len(await records_of(emu.base_url)) == 2 * len(IDS)

        # Run again: everything is on phone/v1 already; nothing is sent but reads.
        since = len(emu.server.requests)
        drop(queue, "move-again.json", migration(IDS, retire=retire))
        assert await run_once(make_settings(queue, emu.base_url)) == 0
        again = report_of(queue, "move-again")
        assert again["counts"]["unchanged"] == len(IDS)
        assert not [p for m, p in sent(emu, since) if m != "GET"]
        assert again["requests"] == len(IDS) * MIGRATED_REQUESTS  # what plan's re-run counts


async def test_an_audio_the_new_model_refuses_fails_that_identity_only(tmp_path: Path) -> None:
    queue = make_queue(tmp_path / "queue", IDS[:2], folders=())
    async with running_emulator() as emu:
        drop(queue, "first.json", job_manifest(IDS[:2], "default/v1"))
        assert await run_once(make_settings(queue, emu.base_url)) == 0
        before = await server_view(emu.base_url, IDS[0])
        drop(queue, "move.json", migration([*IDS[:2], "nobody"], to="digital/v1"))
        assert await run_once(make_settings(queue, emu.base_url)) == 1

        rows = {r["identity"]: r for r in report_of(queue, "move")["enrollments"]}
        assert rows[IDS[0]]["outcome"] == "failed"
        assert "8000 Hz; digital/v1 needs at least 16000 Hz" in rows[IDS[0]]["error"]["reason"]
        assert rows["nobody"]["outcome"] == "kept"  # no voiceprint: nothing to migrate
        assert await server_view(emu.base_url, IDS[0]) == before  # nothing created
        retry = next((queue / "reports").glob("move-*.retry.json")).read_text()
        assert '"migrate"' in retry and IDS[0] in retry and "nobody" not in retry


async def test_plan_and_check_count_a_migration_of_every_identity(tmp_path: Path) -> None:
    queue = make_queue(tmp_path / "queue", IDS, folders=())
    manifest = tmp_path / "move.json"
    manifest.write_text(json.dumps(migration("all", owner="demo", space="main")))
    async with running_emulator() as emu:
        await enrolled_on_default(queue, emu)
        settings = make_settings(queue, emu.base_url)
        out = io.StringIO()
        code = await anyio.to_thread.run_sync(
            lambda: run_plan(
                [str(manifest)], ManifestDefaults.from_settings(settings), 20, False, out
            )
        )
        assert code == 0 and "identities: all are listed when the job runs" in out.getvalue()
        out = io.StringIO()
        code = await anyio.to_thread.run_sync(
            lambda: run_check(settings, [str(manifest)], False, out)
        )
    per = migration_requests(1, "delete")
    expected = f"{len(IDS)} identities to move from default/v1 to phone/v1: at most "
    expected += f"{len(IDS) * per + 3} requests and {len(IDS)} credits"
    assert code == 0, out.getvalue()
    assert any(expected in line for line in out.getvalue().splitlines()), out.getvalue()


async def test_a_read_that_fails_fails_that_identity_and_not_the_job(tmp_path: Path) -> None:
    """A migration reads each voiceprint outside the enrollment rules: an error there is that
    identity's failure, with the reason, and the others still move."""
    queue = make_queue(tmp_path / "queue", IDS[:3], folders=())
    async with running_emulator() as emu:
        drop(queue, "first.json", job_manifest(IDS[:3], "default/v1"))
        assert await run_once(make_settings(queue, emu.base_url)) == 0
        async with misbehaving(emu.root_url) as proxy:
            proxy.on("GET", rf"/voiceprints/{IDS[0]}/main$", status_with(403, {}, "not yours"))
            drop(queue, "move.json", migration(IDS[:3]))
            assert await run_once(make_settings(queue, proxy.base_url)) == 1
    report = report_of(queue, "move")
    rows = {r["identity"]: r for r in report["enrollments"]}
    assert rows[IDS[0]]["outcome"] == "failed" and "403" in rows[IDS[0]]["error"]["reason"]
    assert report["counts"]["replaced"] == 2


async def test_a_long_pause_while_listing_all_checkpoints_the_job(tmp_path: Path) -> None:
    """Listing "all" is the job's own read: a Retry-After above ENROLLER_MAX_RETRY_AFTER stops
    `run --once` with 75 and keeps the job in active/, as it does for an enrollment."""
    queue = make_queue(tmp_path / "queue", IDS[:1], folders=())
    async with running_emulator() as emu, misbehaving(emu.root_url) as proxy:
        drop(queue, "first.json", job_manifest(IDS[:1], "default/v1"))
        assert await run_once(make_settings(queue, emu.base_url)) == 0
        later = status_with(429, {"Retry-After": "999999"}, "later")
        proxy.on("GET", r"/spaces/demo/main/identities$", later)
        drop(queue, "move.json", migration("all", owner="demo", space="main"))
        assert await run_once(make_settings(queue, proxy.base_url)) == EXIT_TEMPFAIL
    assert names(queue / "active") and not names(queue / "failed")
