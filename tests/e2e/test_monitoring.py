"""The alert rules and the dashboard name only series that a real worker's /metrics serves.

A worker process runs a job against the emulator, throttled on purpose (the emulator's rate
limit is below the worker's), and is scraped over its real socket. Every metric that
deploy/prometheus/alerts.yml and deploy/grafana/enroller.json name must be there, with every
label they match on and every label value they select; a renamed metric or label fails here.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
from collections import defaultdict
from pathlib import Path

import aiohttp
import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy_checks import (
    PROMETHEUS_OWN,
    dashboard_panels,
    monitoring_expressions,
    selectors,
)
from tests.emulator_harness import running_emulator
from tests.support import WORKER, drop, free_port, job_manifest, make_queue, wait_for, worker_env

TARGET_LABELS = {"job", "instance"}  # added by Prometheus to every scraped series


def served(text: str) -> dict[str, dict[str, set[str]]]:
    """sample name → label → the values seen."""
    out: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = out[sample.name]
            for key, value in sample.labels.items():
                labels[key].add(value)
    return out


def test_the_dashboard_covers_what_operators_asked_for() -> None:
    text = json.dumps([p["title"] + " " + p.get("description", "") for p in dashboard_panels()])
    for topic in ("Enrollments finished", "Rate use", "by outcome", "Queue depth", "Fleet size"):
        assert topic in text, topic
    for panel in dashboard_panels():
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]


@pytest.mark.timeout(90)
async def test_every_series_the_rules_and_dashboard_name_is_served(tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    ids = [f"mon-{n:02d}" for n in range(4)]
    drop(make_queue(queue, ids, step_s=0.1), "mon.json", job_manifest(ids))
    port = free_port()

    # The emulator allows 4 requests/s; the worker tries 40 at once: 429s come.
    async with running_emulator(rate_limit=4, burst=2) as emu:
        env = worker_env(
            queue, emu.base_url, ENROLLER_METRICS_PORT=str(port), ENROLLER_RATE_LIMIT="40",
            ENROLLER_BURST="10", ENROLLER_HEARTBEAT_INTERVAL="0.2", ENROLLER_SHUTDOWN_GRACE="1",
        )  # fmt: skip
        proc = await anyio.open_process([*WORKER, "run"], env=env, stderr=subprocess.DEVNULL)
        try:
            async with aiohttp.ClientSession() as session:

                async def counted_429() -> str | None:
                    with contextlib.suppress(aiohttp.ClientConnectionError):  # not listening yet
                        async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                            text = await resp.text()
                            return text if 'status="429"' in text else None
                    return None

                text = await wait_for(counted_429, 60, "a 429 counted", step=0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            with anyio.fail_after(30):
                await proc.wait()

    series = served(text)
    missing = []
    for where, expr in monitoring_expressions().items():
        for metric, matchers in selectors(expr):
            if metric in PROMETHEUS_OWN:
                continue
            if metric not in series:
                missing.append(f"{where}: {metric}")
                continue
            for label, (op, value) in matchers.items():
                if label in TARGET_LABELS:
                    continue
                seen = series[metric].get(label, set())
                wanted = value.split("|") if op == "=~" else [value]
                if not seen or (op in {"=", "=~"} and not set(wanted) <= seen):
                    missing.append(f"{where}: {metric}{{{label}{op}{value!r}}} (seen {seen})")
    assert not missing, "\n".join(missing)


def test_selectors_are_read_with_their_matchers() -> None:
    expr = 'sum by (instance) (rate(enroller_x_total{status="429", route=~"a|b"}[5m])) / up'
    assert selectors(expr) == [
        ("enroller_x_total", {"status": ("=", "429"), "route": ("=~", "a|b")}),
        ("up", {}),
    ]
