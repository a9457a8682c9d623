"""Emulator over real sockets: state file across restarts and crashes, CLI, env, --config."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sys
from pathlib import Path

from tests.audiogen import write_audio
from tests.emulator_harness import api_client, emulator_process, running_emulator

SPACE = "/spaces/demo/main"
OCTET = {"Content-Type": "application/octet-stream"}


async def _world(base_url: str, tmp_path: Path) -> dict[str, object]:
    """Create one of everything; return what a restarted emulator must still answer."""
    async with api_client(base_url) as api:
        await api.post(f"{SPACE}/identities", json={"handle": "ann", "alias": "Ann"})
        handle = (await api.post(f"{SPACE}/audios", json={"alias": "sha256:f00"})).body["handle"]
        data = write_audio(tmp_path / "a.wav", voice_s=5.0, silence_s=0.5).read_bytes()
        await api.post(f"{SPACE}/audios/{handle}/file", data=io.BytesIO(data), headers=OCTET)
        waiting = (await api.post(f"{SPACE}/audios", json={})).body["handle"]
        await api.post(
            f"{SPACE}/voiceprints",
            json={"identity": "ann", "model": "phone/v1", "minAudios": 1, "handle": "vp"},
        )
        await api.post(f"{SPACE}/voiceprints/ann/vp/audios/{handle}")
        await api.post(f"{SPACE}/voiceprints/ann/vp:compute")
        token = (
            await api.post(
                "/auth/credentials", json={"handle": "demo", "password": "demo-password"}
            )
        ).body["token"]
        return {
            "identity": (await api.get(f"{SPACE}/identities/ann")).body,
            "audio": (await api.get(f"{SPACE}/audios/{handle}")).body,
            "waiting": (await api.get(f"{SPACE}/audios/{waiting}")).body,
            "voiceprint": (await api.get(f"{SPACE}/voiceprints/ann/vp")).body,
            "records": (await api.get("/user/records/voiceprint")).body,
            "token": token,
        }


async def _same_world(base_url: str, before: dict[str, object]) -> None:
    async with api_client(base_url) as api:
        assert (await api.get(f"{SPACE}/identities/ann")).body == before["identity"]
        audio = before["audio"]
        assert isinstance(audio, dict) and audio["state"] == "available"
        assert (await api.get(f"{SPACE}/audios/{audio['handle']}")).body == audio
        waiting = before["waiting"]
        assert isinstance(waiting, dict)
        assert (await api.get(f"{SPACE}/audios/{waiting['handle']}")).body == waiting
        assert (await api.get(f"{SPACE}/voiceprints/ann/vp")).body == before["voiceprint"]
        assert (await api.get("/user/records/voiceprint")).body == before["records"]
        # Session tokens survive too: a worker mid-run does not have to sign in again.
        assert (await api.get("/user", token=before["token"])).status == 200
        # Rules still hold on restored state: computed is final, one file per audio.
        assert (await api.post(f"{SPACE}/voiceprints/ann/vp:compute")).status == 409
        again = await api.post(f"{SPACE}/audios/{audio['handle']}/file", data=b"x", headers=OCTET)
        assert again.status == 409
        assert (await api.post(f"{SPACE}/identities", json={"handle": "ann"})).status == 409


async def test_restart_with_the_same_state_file_keeps_everything(tmp_path: Path) -> None:
    state_file = tmp_path / "state" / "emulator.json"
    async with running_emulator(state_file=state_file, credits=1) as emu:
        before = await _world(emu.base_url, tmp_path)
        port = emu.port
        await emu.restart()
        assert emu.port == port
        await _same_world(emu.base_url, before)
        # Credits spent before the restart stay spent.
        async with emu.client() as api:
            await api.post(
                f"{SPACE}/voiceprints",
                json={"identity": "ann", "model": "phone/v1", "minAudios": 1, "handle": "vp2"},
            )
            audio = before["audio"]
            assert isinstance(audio, dict)
            data = write_audio(tmp_path / "b.wav", voice_s=5.0).read_bytes()
            h = (await api.post(f"{SPACE}/audios", json={})).body["handle"]
            await api.post(f"{SPACE}/audios/{h}/file", data=io.BytesIO(data), headers=OCTET)
            await api.post(f"{SPACE}/voiceprints/ann/vp2/audios/{h}")
            assert (await api.post(f"{SPACE}/voiceprints/ann/vp2:compute")).status == 429
    assert not list(state_file.parent.glob("*.tmp"))  # atomic writes leave no temp files
    json.loads(state_file.read_text())  # and the file is whole


async def test_kill_9_loses_nothing_that_was_acknowledged(tmp_path: Path) -> None:
    state_file = tmp_path / "emulator.json"
    async with emulator_process(state_file=state_file) as proc:
        before = await _world(proc.base_url, tmp_path)
        proc.kill()
        assert await proc.wait() == -signal.SIGKILL
        await proc.restart()
        await _same_world(proc.base_url, before)


async def test_cli_prints_url_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    async with emulator_process() as proc:
        assert proc.base_url.startswith("http://127.0.0.1:") and proc.base_url.endswith("/v1")
        async with api_client(proc.base_url) as api:
            assert (await api.get("/user")).status == 200
        assert await proc.stop() == 0
        assert "Traceback" not in proc.stderr()


async def test_enroller_emulator_subcommand_and_env_vars(tmp_path: Path) -> None:
    """`python -m worker emulator` dispatches to emulator.cli; EMULATOR_* vars apply."""
    env = {**os.environ, "EMULATOR_RATE_LIMIT": "1", "EMULATOR_BURST": "1"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker", "emulator", "--port", "0",
        stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        async with asyncio.timeout(20):
            line = (await process.stdout.readline()).decode()
        url = line.strip().rsplit(" ", 1)[-1]
        assert url.endswith("/v1"), line
        async with api_client(url) as api:
            first, second = await api.get("/user"), await api.get("/user")
        assert first.status == 200 and second.status == 429
        assert second.headers["Retry-After"] == "1"
    finally:
        process.send_signal(signal.SIGINT)
        assert await process.wait() == 0


async def test_bad_flags_exit_2_with_a_message() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "emulator", "--fault-rate", "2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await process.communicate()
    assert process.returncode == 2
    assert b"--fault-rate" in err


async def test_config_file_replaces_the_seeded_world(tmp_path: Path) -> None:
    config = tmp_path / "world.json"
    config.write_text(
        json.dumps(
            {
                "users": [{"handle": "zed", "api_keys": ["zed-key"], "orgs": ["zorg"]}],
                "orgs": [{"handle": "zorg"}],
                "spaces": [{"owner": "zorg", "handle": "lab"}],
                "credits": {"zorg": 0},
            }
        )
    )
    async with running_emulator(config=config) as emu, emu.client("zed-key") as api:
        assert (await api.get("/user")).body["orgs"] == ["zorg"]
        made = await api.post("/spaces/zorg/lab/identities", json={"handle": "z"})
        assert made.status == 201
        assert (await api.get("/user", token="demo-key")).status == 401
        assert emu.emulator.state.credits_left("zorg") == 0
