"""The status page's deployment files (issue 31): the compose `web` service (alone and with
the fleet override) and deploy/kubernetes/web/: valid, real commands and settings, and safe —
it listens beyond loopback only with a token from a secret file, and reads the queue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy_checks import check_enroller_command, check_variable
from tests.unit.test_deploy import compose
from tests.unit.test_deploy_fleet import override
from tests.unit.test_deploy_kubernetes import VALIDATE, VERSIONS, validate
from worker.commands.web_guard import check_bind
from worker.config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
WEB = sorted((ROOT / "deploy" / "kubernetes" / "web").glob("*.yaml"))


def _kube() -> dict[str, dict[str, Any]]:
    docs = [d for path in WEB for d in yaml.safe_load_all(path.read_text(encoding="utf-8"))]
    return {d["kind"]: d for d in docs}


def test_the_compose_web_service_runs_the_page_with_a_token_on_loopback(tmp_path: Path) -> None:
    web = compose()["services"]["web"]
    check_enroller_command(web["command"])
    for var in web["environment"]:
        check_variable(var, "docker-compose.yml web")
    assert all(port.startswith("127.0.0.1:") for port in web["ports"])
    secret = web["secrets"][0]
    assert web["environment"]["ENROLLER_WEB_TOKEN_FILE"] == f"/run/secrets/{secret['target']}"
    token_file = ROOT / compose()["secrets"][secret["source"]]["file"]
    env = {k.removeprefix("ENROLLER_").lower(): v for k, v in web["environment"].items()}
    env["web_token_file"] = str(token_file)
    settings = Settings(**env)
    check_bind(settings)  # 0.0.0.0 with the token: allowed
    assert settings.web_token is not None
    with pytest.raises(Exception, match="without a token"):
        check_bind(Settings(**{k: v for k, v in env.items() if k != "web_token_file"}))


def test_the_fleet_override_gives_the_page_redis() -> None:
    web = override()["services"]["web"]
    assert web["environment"]["ENROLLER_REDIS_URL"] == "redis://redis:6379/0"
    assert web["depends_on"]["redis"] == {"condition": "service_healthy"}


def test_the_kubernetes_page_validates_strictly() -> None:
    if not VALIDATE.exists():
        pytest.skip("kubernetes-validate not installed: pip install -e '.[test]'")
    for version in VERSIONS:
        done = validate(WEB, version)
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_kubernetes_page_reads_the_queue_with_a_token_and_is_served() -> None:
    kinds = _kube()
    assert set(kinds) == {"Deployment", "Service", "Secret"}
    spec = kinds["Deployment"]["spec"]["template"]["spec"]
    [container] = spec["containers"]
    check_enroller_command(container["args"])
    env = {e["name"]: e for e in container["env"]}
    for name in env:
        check_variable(name, "deploy/kubernetes/web")
    assert env["ENROLLER_WEB_HOST"]["value"] == "0.0.0.0"  # noqa: S104 - with the token
    token = Path(env["ENROLLER_WEB_TOKEN_FILE"]["value"])
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts[str(token.parent)]["readOnly"] is True
    assert mounts["/jobs"]["readOnly"] is True  # the page only reads the queue
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert (
        volumes[mounts[str(token.parent)]["name"]]["secret"]["secretName"]
        == (kinds["Secret"]["metadata"]["name"])
    )
    assert token.name in kinds["Secret"]["stringData"]
    labels = kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    selector = kinds["Service"]["spec"]["selector"]
    assert selector.items() <= labels.items()
    port = container["ports"][0]
    assert str(port["containerPort"]) == env["ENROLLER_WEB_PORT"]["value"]
    assert kinds["Service"]["spec"]["ports"][0]["targetPort"] == port["name"]
