"""The fleet's deployment files (issue 14): the compose override and the Kubernetes example.

The override must validate against the Compose specification on its own and merged over
docker-compose.yml, set only real settings and point the workers at its Redis; the Kubernetes
fleet must validate strictly and run real commands with real settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy_checks import check_enroller_command, check_variable
from tests.unit.test_deploy import compose, compose_schema
from tests.unit.test_deploy_kubernetes import VALIDATE, VERSIONS, validate

ROOT = Path(__file__).resolve().parents[2]
OVERRIDE = ROOT / "docker-compose.fleet.yml"
FLEET = sorted((ROOT / "deploy" / "kubernetes" / "fleet").glob("*.yaml"))


def override() -> dict[str, Any]:
    doc = yaml.safe_load(OVERRIDE.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def _merged() -> dict[str, Any]:
    """The override over the base, the way Compose merges mappings (enough for these keys)."""
    base = compose()
    for name, service in override()["services"].items():
        target = base["services"].setdefault(name, {})
        for key, value in service.items():
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                target[key] = {**target[key], **value}
            else:
                target[key] = value
    return base


@pytest.mark.parametrize("document", [override, _merged], ids=["alone", "merged"])
def test_the_override_validates_against_the_compose_specification(document: Any) -> None:
    validator = jsonschema.Draft7Validator(compose_schema())
    errors = [e.message for e in validator.iter_errors(document())]
    assert errors == []
    assert "name" not in document()  # Compose 1.29 reads it too


def test_the_fleet_workers_use_the_override_redis_and_real_settings() -> None:
    merged = _merged()["services"]
    assert merged["worker"]["environment"]["ENROLLER_REDIS_URL"] == "redis://redis:6379/0"
    assert merged["worker"]["depends_on"]["redis"] == {"condition": "service_healthy"}
    assert "emulator" in merged["worker"]["depends_on"]  # the base's dependency is kept
    for var in merged["worker"]["environment"]:
        check_variable(var, "docker-compose.fleet.yml")


def test_the_kubernetes_fleet_validates_strictly() -> None:
    if not VALIDATE.exists():
        pytest.skip("kubernetes-validate not installed: pip install -e '.[test]'")
    for version in VERSIONS:
        done = validate(FLEET, version)
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_kubernetes_fleet_runs_real_commands_with_real_settings() -> None:
    docs = [d for path in FLEET for d in yaml.safe_load_all(path.read_text(encoding="utf-8"))]
    [worker] = [d for d in docs if d["kind"] == "Deployment" and "worker" in d["metadata"]["name"]]
    assert worker["spec"]["replicas"] > 1
    [container] = worker["spec"]["template"]["spec"]["containers"]
    check_enroller_command(container["args"])
    for probe in ("livenessProbe",):
        check_enroller_command(container[probe]["exec"]["command"])
    env = {e["name"]: e for e in container["env"]}
    for name in env:
        check_variable(name, "deploy/kubernetes/fleet")
    services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    host = env["ENROLLER_REDIS_URL"]["value"].split("//")[1].split(":")[0]
    assert host in services  # the URL names the Redis Service shipped beside it


def test_the_fleet_workers_read_only_root_keeps_a_writable_tmp_for_the_journal_index() -> None:
    docs = [d for path in FLEET for d in yaml.safe_load_all(path.read_text(encoding="utf-8"))]
    [worker] = [d for d in docs if d["kind"] == "Deployment" and "worker" in d["metadata"]["name"]]
    spec = worker["spec"]["template"]["spec"]
    [container] = spec["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    scratch = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
    [tmp] = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert tmp["name"] in scratch and not tmp.get("readOnly")
