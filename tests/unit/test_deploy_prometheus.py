"""deploy/prometheus/ and deploy/grafana/ through promtool, Prometheus's own checker.

`promtool check rules` parses every alert; `promtool test rules` runs alerts.test.yml, which
feeds each alert the series that should raise it (and a healthy neighbour that must not); the
dashboard's queries are parsed by the same promtool as recording rules. That the series exist
on a real worker's /metrics is tests/e2e/test_monitoring.py's job.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy_checks import ALERTS, alert_rules, dashboard_panels, monitoring_expressions

PROMTOOL = shutil.which("promtool")
if PROMTOOL is None:
    pytest.skip(
        "promtool not found: apt-get install prometheus (.ci/run does)", allow_module_level=True
    )
PROM = ALERTS.parent


def promtool(*args: str, cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_check_rules() -> None:
    done = promtool("check", "rules", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_alerts_unit_tests_pass() -> None:
    done = promtool("test", "rules", "alerts.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_seen_firing_in_the_unit_tests() -> None:
    doc = yaml.safe_load((PROM / "alerts.test.yml").read_text(encoding="utf-8"))
    fired = {
        case["alertname"]
        for test in doc["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert fired == {rule["alert"] for rule in alert_rules()}


def test_the_scrape_config_is_valid_and_names_the_job_the_rules_expect() -> None:
    done = promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    config = yaml.safe_load((PROM / "prometheus.yml").read_text(encoding="utf-8"))
    assert [job["job_name"] for job in config["scrape_configs"]] == ["voiceprint-enroller"]
    assert 'job="voiceprint-enroller"' in ALERTS.read_text(encoding="utf-8")


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # Grafana's $__range is not PromQL; any range stands in for it.
    exprs = {w: e for w, e in monitoring_expressions().items() if w.startswith("enroller.json")}
    assert len(exprs) >= len(dashboard_panels())
    rules = [
        {"record": f"enroller:dashboard_query_{n}", "expr": expr.replace("$__range", "1h")}
        for n, expr in enumerate(exprs.values())
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = promtool("check", "rules", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_would_catch_a_broken_expression(tmp_path: Path) -> None:
    text = ALERTS.read_text(encoding="utf-8").replace("increase(", "increase((", 1)
    (tmp_path / "alerts.yml").write_text(text)
    done = promtool("check", "rules", "alerts.yml", cwd=tmp_path)
    assert done.returncode != 0 and "parse error" in done.stdout + done.stderr
