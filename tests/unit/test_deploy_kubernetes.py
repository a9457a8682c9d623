"""deploy/kubernetes/: strictly valid resources, real commands and settings, safe shutdown.

`kubernetes-validate --strict` (a test extra) checks each file against the Kubernetes API
schemas with unknown fields rejected, for the oldest version the manifests need (1.31:
podFailurePolicy is GA there) and the newest the package knows. The rest holds the manifests
to the worker they run: every `enroller …` command parses, every ENROLLER_* name is a setting,
the grace period outlasts the worker's, and the settings they set build.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy_checks import check_enroller_command, check_variable
from worker.config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
MANIFESTS = sorted(KUBE.glob("*.yaml"))
VALIDATE = Path(sys.executable).parent / "kubernetes-validate"
VERSIONS = ["1.31.0", "1.37.0"]


def resources() -> dict[str, dict[str, Any]]:
    """kind → the resource (one of each kind here)."""
    out: dict[str, dict[str, Any]] = {}
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            assert doc["kind"] not in out, f"second {doc['kind']} in {path.name}"
            out[doc["kind"]] = doc
    return out


def pod_specs() -> dict[str, dict[str, Any]]:
    kinds = resources()
    return {
        "Deployment": kinds["Deployment"]["spec"]["template"]["spec"],
        "CronJob": kinds["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"],
    }


def validate(paths: list[Path], version: str) -> subprocess.CompletedProcess[str]:
    argv = [str(VALIDATE), "--strict", "--quiet", "-k", version, *map(str, paths)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def test_the_expected_resources_are_there() -> None:
    assert set(resources()) == {
        "ConfigMap", "CronJob", "Deployment", "PersistentVolumeClaim", "Secret", "Service"
    }  # fmt: skip


@pytest.mark.parametrize("version", VERSIONS)
def test_manifests_validate_strictly(version: str) -> None:
    done = validate(MANIFESTS, version)
    assert done.returncode == 0, done.stdout + done.stderr


def test_strict_validation_would_catch_a_misspelt_field(tmp_path: Path) -> None:
    text = (KUBE / "deployment.yaml").read_text(encoding="utf-8")
    broken = tmp_path / "deployment.yaml"
    broken.write_text(text.replace("readOnlyRootFilesystem", "readOnlyRootFileSystem"))
    done = validate([broken], VERSIONS[-1])
    assert done.returncode != 0
    assert "readOnlyRootFileSystem" in done.stdout + done.stderr


def _commands() -> list[list[str]]:
    cmds = []
    for spec in pod_specs().values():
        for container in spec["containers"]:
            assert "command" not in container, "use args: the image's tini entrypoint stays"
            cmds.append(container["args"])
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                if probe in container:
                    cmds.append(container[probe]["exec"]["command"])
    return cmds


def test_every_enroller_command_is_real() -> None:
    commands = _commands()
    assert ["enroller", "run"] in commands
    assert ["enroller", "run", "--once"] in commands
    assert ["enroller", "healthcheck", "--quiet"] in commands
    for argv in commands:
        check_enroller_command(argv)


def test_every_variable_is_a_real_setting() -> None:
    names = list(resources()["ConfigMap"]["data"])
    for spec in pod_specs().values():
        for container in spec["containers"]:
            names += [e["name"] for e in container.get("env", [])]
    assert names
    for name in names:
        check_variable(name, "deploy/kubernetes")


def test_the_settings_they_set_build(tmp_path: Path) -> None:
    env = {
        k.removeprefix("ENROLLER_").lower(): v for k, v in resources()["ConfigMap"]["data"].items()
    }
    key = tmp_path / "api_key"
    key.write_text(resources()["Secret"]["stringData"]["api_key"] + "\n")
    settings = Settings(**env, api_key_file=key)
    assert settings.queue_dir == Path("/jobs")
    assert settings.log_format == "json" and settings.metrics_port == 9100
    assert settings.api_key is not None


def test_key_file_lies_in_the_mounted_secret() -> None:
    secret = resources()["Secret"]["metadata"]["name"]
    for kind, spec in pod_specs().items():
        volumes = {v["name"]: v for v in spec["volumes"]}
        (container,) = spec["containers"]
        env = {e["name"]: e["value"] for e in container["env"]}
        key_file = Path(env["ENROLLER_API_KEY_FILE"])
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        mount = mounts[str(key_file.parent)]
        assert volumes[mount["name"]]["secret"]["secretName"] == secret, kind
        assert key_file.name in resources()["Secret"]["stringData"], kind
        assert mounts["/jobs"]["name"] in volumes, kind


def test_shutdown_grace_fits_inside_the_pods_grace_period() -> None:
    grace = float(resources()["ConfigMap"]["data"]["ENROLLER_SHUTDOWN_GRACE"])
    for kind, spec in pod_specs().items():
        assert spec["terminationGracePeriodSeconds"] > grace + 5, kind


def test_pods_run_non_root_with_a_read_only_root_filesystem() -> None:
    for kind, spec in pod_specs().items():
        assert spec["securityContext"]["runAsNonRoot"] is True, kind
        assert spec["securityContext"]["runAsUser"] == 10001, kind  # the image's user
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, kind
            assert ctx["allowPrivilegeEscalation"] is False, kind
            assert ctx["capabilities"]["drop"] == ["ALL"], kind
            assert container["resources"]["requests"] and container["resources"]["limits"]


def test_a_read_only_root_still_gives_the_journal_index_a_writable_tmp() -> None:
    # The journal index lives in TMPDIR (local disk, never the shared queue): without a
    # volume there, every job would fail to open it (EROFS) and checkpoint forever.
    for kind, spec in pod_specs().items():
        scratch = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in spec["containers"]:
            tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert [m["name"] for m in tmp if not m.get("readOnly")] != [], kind
            assert {m["name"] for m in tmp} <= scratch, kind


def test_the_nightly_run_never_overlaps_and_explains_exit_codes() -> None:
    cron = resources()["CronJob"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]["spec"]
    (container,) = job["template"]["spec"]["containers"]
    rules = job["podFailurePolicy"]["rules"]
    fail = next(r for r in rules if r["action"] == "FailJob")
    assert fail["onExitCodes"]["containerName"] == container["name"]
    # worker.base.exitcodes: EXIT_FAILURES, EXIT_FATAL
    assert fail["onExitCodes"]["values"] == [1, 2]
    text = (KUBE / "cronjob.yaml").read_text(encoding="utf-8")
    for code in ("0 ", "1 ", "2 "):
        assert f"#   {code}" in text, f"exit code {code.strip()} is not explained"


def test_the_queue_claim_can_be_shared() -> None:
    claim = resources()["PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for spec in pod_specs().values():
        claims = [
            v["persistentVolumeClaim"]["claimName"]
            for v in spec["volumes"]
            if "persistentVolumeClaim" in v
        ]
        assert claims == [claim["metadata"]["name"]]


def test_metrics_service_selects_the_daemon() -> None:
    service = resources()["Service"]
    labels = resources()["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
