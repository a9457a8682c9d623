"""The status page on a job of 1 000 000 rows: time to first paint and page weight.

    .venv/bin/python benchmarks/web_page.py [--rows 1000000] [--trials 5]

Builds, in a fresh queue, a finished job as the worker leaves it: `reports/<job>.report.json`
with its head and one row per enrollment (1 000 000 rows, ~250 MB) and a failures CSV in which
every row failed (the worst case for the failures table: 1 000 000 rows). Then runs `enroller
web` as its own process and measures:

- the server's answer for the job page (its first failures page, a page near the end through
  the cursor, a filter that matches nothing and reads to its bound), the jobs page and the
  overview: median wall time of an HTTP GET over loopback, and the HTML's bytes;
- in Debian's headless chromium (Selenium + chromium-driver), the job page's first paint and
  first contentful paint (the browser's own Paint Timing entries), median over trials, and the
  page weight: every byte the browser fetched for it (HTML, style sheet, script).

Prints one JSON object. Needs chromium and chromium-driver (apt-get install chromium
chromium-driver) for the browser figures; without them it prints the server's only.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.harness import machine  # noqa: E402
from tests.support import free_port  # noqa: E402

JOB = "nightly-0123456789"
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def build_job(queue: Path, rows: int) -> dict[str, int]:
    """The report and failures CSV of a finished job of `rows` enrollments, all failed."""
    reports = queue / "reports"
    for folder in ("inbox", "active", "done", "failed", "reports"):
        (queue / folder).mkdir(parents=True, exist_ok=True)
    head = {
        "job_id": JOB, "manifest": "nightly.csv", "manifest_sha256": "0" * 64,
        "started_at": "2026-12-07T01:00:00Z", "finished_at": "2026-12-07T05:00:00Z",
        "total": rows, "counts": {"enrolled": 0, "failed": rows}, "requests": rows * 2,
        "credits_spent": 0, "interrupted": False, "files": {},
    }  # fmt: skip
    report = reports / f"{JOB}.report.json"
    with report.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps(head)[:-1] + ', "enrollments": [')
        for i in range(rows):
            row = {
                "identity": f"cust-{i:07d}", "line": i + 2, "outcome": "failed",
                "voiceprint": "main", "model": "phone/v1", "audios": [f"cust-{i:07d}/call-1.wav"],
                "error": {"step": "preflight", "status": None,
                          "reason": f'audio "cust-{i:07d}/call-1.wav": does not exist'},
            }  # fmt: skip
            fh.write(("," if i else "") + json.dumps(row))
        fh.write("]}")
    failures = reports / f"{JOB}.failures.csv"
    with failures.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["identity", "audio", "model", "error_step", "error"])
        for i in range(rows):
            audio = f"cust-{i:07d}/call-1.wav"
            out.writerow([f"cust-{i:07d}", audio, "phone/v1", "preflight",
                          f'audio "{audio}": does not exist'])  # fmt: skip
    return {"report_bytes": report.stat().st_size, "failures_bytes": failures.stat().st_size}


def _get(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as answer:  # noqa: S310 - our own loopback
        body = answer.read()
    return time.perf_counter() - started, len(body)


def server_figures(base: str, deep_at: int, trials: int) -> dict[str, Any]:
    pages = {
        "job_first_page": f"/jobs/{JOB}",
        "job_deep_page": f"/jobs/{JOB}?at={deep_at}&row=999000",
        "job_filter_no_match": f"/jobs/{JOB}?q=no-such-identity",
        "jobs": "/jobs",
        "overview": "/",
    }
    out = {}
    for name, path in pages.items():
        runs = [_get(base + path) for _ in range(trials)]
        out[name] = {
            "median_ms": round(statistics.median(t for t, _ in runs) * 1000, 1),
            "html_bytes": runs[0][1],
        }
    return out


def browser_figures(base: str, trials: int) -> dict[str, Any] | None:
    if not (os.access(CHROMIUM, os.X_OK) and os.access(DRIVER, os.X_OK)):
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    paints: dict[str, list[float]] = {"first-paint": [], "first-contentful-paint": []}
    weight = 0
    try:
        for _ in range(trials):
            driver.execute_cdp_cmd("Network.clearBrowserCache", {})
            driver.get(f"{base}/jobs/{JOB}")
            found = driver.execute_script(
                "return performance.getEntriesByType('paint').map(e => [e.name, e.startTime]);"
            )
            for name, at in found:
                paints[name].append(at)
            weight = driver.execute_script(
                "const nav = performance.getEntriesByType('navigation')[0];"
                "return performance.getEntriesByType('resource')"
                ".reduce((s, r) => s + r.transferSize, nav.transferSize);"
            )
    finally:
        driver.quit()
    return {
        **{f"{k}_median_ms": round(statistics.median(v), 1) for k, v in paints.items() if v},
        "page_weight_bytes": weight,
        "trials": trials,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        queue = Path(tmp) / "queue"
        started = time.perf_counter()
        sizes = build_job(queue, args.rows)
        built_s = time.perf_counter() - started
        failures = queue / "reports" / f"{JOB}.failures.csv"
        with failures.open("rb") as fh:  # a row start near the end, as a "next" link gives
            fh.seek(max(0, sizes["failures_bytes"] - 60 * 100))
            fh.readline()
            deep_at = fh.tell()
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENROLLER_")}
        env.update(ENROLLER_QUEUE_DIR=str(queue), ENROLLER_WEB_PORT=str(port))
        web = subprocess.Popen(
            [sys.executable, "-m", "worker", "web"], env=env, stdout=subprocess.PIPE, text=True
        )
        try:
            assert web.stdout is not None and "status page on" in web.stdout.readline()
            base = f"http://127.0.0.1:{port}"
            result = {
                "benchmark": "web_page",
                "rows": args.rows,
                **sizes,
                "build_s": round(built_s, 1),
                "server": server_figures(base, deep_at, args.trials),
                "browser": browser_figures(base, args.trials),
                "machine": machine(),
            }
        finally:
            web.terminate()
            web.wait(timeout=30)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
