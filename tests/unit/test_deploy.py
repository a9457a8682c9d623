"""Dockerfile and docker-compose.yml, checked without a Docker engine.

The engine-backed proof is `make test-container` (tests/container/); these run in every `make
test`: the compose file parses and validates against the Compose specification's JSON schema
(the copy that the check-jsonschema package ships, so no network at test time) and stays
readable by Compose 1.29; every command the files run exists in the CLI; every variable they
set is a real setting; the image installs exactly pyproject's dependencies, before the source.
"""

from __future__ import annotations

import importlib.resources
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy_checks import check_enroller_command, check_variable, enroller_commands_in_shell
from worker.config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"


def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def compose_schema() -> dict[str, Any]:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((vendor / "compose-spec.json").read_text(encoding="utf-8"))


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"use the exec form (a JSON list), not {args!r}"
    return value


# --- compose ----------------------------------------------------------------------------------


def test_compose_validates_against_the_compose_specification() -> None:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_compose_1_29_can_read_it() -> None:
    # Compose 1.29 (Debian's docker-compose) rejects a top-level `name:`; the project name
    # comes from the folder or COMPOSE_PROJECT_NAME instead.
    assert "name" not in compose()
    assert "version" not in compose(), "obsolete in the Compose specification"


def test_the_schema_check_would_catch_a_mistake() -> None:
    broken = compose()
    broken["services"]["worker"]["stop_grace_periodd"] = "35s"
    schema = compose_schema()
    assert not jsonschema.validators.validator_for(schema)(schema).is_valid(broken)


def _commands() -> list[list[str]]:
    services = compose()["services"]
    cmds = [s["command"] for s in services.values() if s.get("command", [""])[0] == "enroller"]
    cmds += [exec_form(args) for word, args in dockerfile_instructions() if word == "CMD"]
    health = [args for word, args in dockerfile_instructions() if word == "HEALTHCHECK"]
    assert len(health) == 1
    cmds.append(exec_form(health[0].split(" CMD ", 1)[1]))
    return cmds


def test_every_enroller_command_exists_and_its_arguments_parse() -> None:
    commands = _commands()
    assert ["enroller", "run"] in commands
    assert ["enroller", "healthcheck", "--quiet"] in commands
    assert any(c[:2] == ["enroller", "emulator"] for c in commands)
    for argv in commands:
        check_enroller_command(argv)


@pytest.mark.parametrize("command", ["run", "healthcheck", "emulator"])
def test_the_installed_entry_point_knows_each_command(command: str) -> None:
    argv = [sys.executable, "-m", "worker", command, "--help"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_every_environment_variable_is_a_real_setting() -> None:
    for name, service in compose()["services"].items():
        env = service.get("environment", {})
        assert isinstance(env, dict), f"{name}: use the mapping form for environment"
        for var in env:
            check_variable(var, name)
    for word, args in dockerfile_instructions():
        if word == "ENV":
            for var in re.findall(r"(ENROLLER_\w+)=", args):
                check_variable(var, "Dockerfile")


def test_worker_settings_from_compose_build_and_point_at_the_emulator(tmp_path: Path) -> None:
    worker = compose()["services"]["worker"]
    env = {k.removeprefix("ENROLLER_").lower(): v for k, v in worker["environment"].items()}
    key_file = tmp_path / "api_key"
    key_file.write_text((ROOT / "secrets" / "api_key.example").read_text())
    env["api_key_file"] = str(key_file)
    settings = Settings(**env)
    assert settings.api_url == "http://emulator:8765/v1"
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "demo-key"
    secret = worker["secrets"][0]
    assert worker["environment"]["ENROLLER_API_KEY_FILE"] == f"/run/secrets/{secret['target']}"
    assert compose()["secrets"][secret["source"]]["file"] == "./secrets/api_key.example"
    assert "./jobs:/jobs" in worker["volumes"]
    assert worker["depends_on"]["emulator"]["condition"] == "service_healthy"


def _seconds(duration: str) -> float:
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration):
        total += float(amount) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def test_stop_grace_period_outlasts_the_workers_shutdown_grace() -> None:
    for name, service in compose()["services"].items():
        if service.get("command") == ["enroller", "run"]:
            grace = float(service["environment"].get("ENROLLER_SHUTDOWN_GRACE", 20.0))
            assert _seconds(service["stop_grace_period"]) > grace + 5, name


def test_a_profile_points_a_worker_at_the_real_api() -> None:
    real = compose()["services"]["worker-real"]
    assert "real" in real["profiles"]
    assert "emulator" not in real["environment"]["ENROLLER_API_URL"]
    assert "depends_on" not in real


# --- Dockerfile -------------------------------------------------------------------------------


def test_dockerfile_shape() -> None:
    steps = dockerfile_instructions()
    words = [w for w, _ in steps]
    assert steps[0][0] == "FROM" and re.match(r"python:3\.11-slim", steps[0][1])
    assert ("USER", "enroller") in steps and words.index("USER") > words.index("RUN")
    assert ("ENV", "ENROLLER_QUEUE_DIR=/jobs") in steps
    assert ("VOLUME", '["/jobs"]') in steps
    assert exec_form(dict(steps)["ENTRYPOINT"])[0].endswith("tini")
    assert exec_form(dict(steps)["CMD"]) == ["enroller", "run"]


def test_dockerfile_installs_pyprojects_dependencies_before_the_source() -> None:
    steps = dockerfile_instructions()
    copies = [i for i, (w, _) in enumerate(steps) if w == "COPY"]
    first_copy = steps[copies[0]][1]
    assert first_copy.startswith("pyproject.toml"), "dependencies must be a layer of their own"
    dep_step = next(i for i, (w, a) in enumerate(steps) if w == "RUN" and "tomllib" in a)
    source_copy = next(i for i, (w, a) in enumerate(steps) if w == "COPY" and "worker" in a)
    assert copies[0] < dep_step < source_copy

    # Run the Dockerfile's own extraction against pyproject.toml: the same list comes out.
    code = re.search(r'python -c "(.+?)" >', steps[dep_step][1])
    assert code is not None
    done = subprocess.run(
        [sys.executable, "-c", code.group(1)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert done.stdout.split() == project["dependencies"]
    assert "pip install -r /tmp/requirements.txt" in steps[dep_step][1]

    # The package itself is installed without dependencies: nothing else sneaks in.
    installs = [a for w, a in steps[source_copy:] if w == "RUN" and "pip install" in a]
    assert installs and all("--no-deps" in a for a in installs)


def test_dockerignore_keeps_secrets_state_and_the_venv_out_of_the_build_context() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "allow-list: ignore everything, then re-include what the build uses"
    included = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert included == {"pyproject.toml", "README.md", "worker", "emulator", "jobs/examples"}
    copied = {a.split()[0].rstrip("/") for w, a in dockerfile_instructions() if w == "COPY"}
    assert copied <= included, "the Dockerfile copies something the context does not send"


def test_the_example_secret_is_the_emulators_public_demo_key_and_real_ones_are_ignored() -> None:
    assert (ROOT / "secrets" / "api_key.example").read_text().strip() == "demo-key"
    ignored = (ROOT / "secrets" / ".gitignore").read_text().splitlines()
    assert "*" in ignored and "!api_key.example" in ignored


def test_every_enroller_command_in_the_readmes_shell_blocks_parses() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", readme, flags=re.DOTALL)
    commands = [argv for block in blocks for argv in enroller_commands_in_shell(block)]
    assert ["enroller", "run", "--once"] in commands and ["enroller", "status"] in commands
    for argv in commands:
        check_enroller_command(argv)


def test_every_read_only_service_has_a_tmpfs_tmp_for_the_journal_index() -> None:
    services = compose()["services"]
    read_only = [name for name, svc in services.items() if svc.get("read_only")]
    assert "worker" in read_only
    for name in read_only:
        assert "/tmp" in [t.split(":")[0] for t in services[name].get("tmpfs", [])], name
