"""The status page in a real browser: Debian's headless chromium, driven through its
chromium-driver by Selenium, against a live worker, the emulator and `enroller web`, each its
own process as operators run them.

It sees a dropped manifest appear, its progress advance with no reload, its failures listed
with the worker's reasons (the hostile identity as text), follows the links to the job and a
download, and reads the same data with JavaScript off. With TEST_SCREENSHOTS=docs it
writes the README's screenshots (docs/web-*.png); otherwise they go to the test's tmp dir.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import pytest

from tests.emulator_harness import running_emulator
from tests.support import (
    MODEL,
    WORKER,
    drop,
    free_port,
    make_queue,
    start_worker,
    wait_for,
    worker_env,
)

CHROMIUM = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"
HOSTILE = "<img src=x onerror=alert(1)>"
ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

pytestmark = [pytest.mark.scenario, pytest.mark.timeout(150)]

if not (os.access(CHROMIUM, os.X_OK) and os.access(DRIVER, os.X_OK)):
    pytest.skip(
        "browser tests: install chromium and chromium-driver (apt-get install chromium "
        "chromium-driver)",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402 - only once chromium is known to be there
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402


def _browser(downloads: Path, javascript: bool = True) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,900"):
        options.add_argument(arg)
    prefs: dict[str, Any] = {"download.default_directory": str(downloads)}
    if not javascript:
        prefs["profile.managed_default_content_settings.javascript"] = 2
    options.add_experimental_option("prefs", prefs)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    return driver


async def _in_thread(call: Callable[[], T]) -> T:
    """A blocking WebDriver call, off the event loop that serves the emulator."""
    return await anyio.to_thread.run_sync(call)


def _shots(tmp_path: Path) -> Path:
    wanted = os.environ.get("TEST_SCREENSHOTS") == "docs"
    return ROOT / "docs" if wanted else tmp_path


@pytest.fixture
def web_ports() -> Iterator[int]:
    yield free_port()


def _noscript_shown(driver: webdriver.Chrome) -> bool:
    """Whether the page's <noscript> note shows (only a browser running no script shows it)."""
    return any(e.is_displayed() for e in driver.find_elements(By.ID, "no-refresh"))


def _text(driver: webdriver.Chrome, css: str) -> str:
    """The element's rendered text, read in one script call: the refresh may swap the live part
    between a lookup and a read, and an element looked up before is then stale."""
    script = "const e = document.querySelector(arguments[0]);"
    script += "return e ? (e.innerText ?? e.textContent) : '';"  # an SVG has no innerText
    return str(driver.execute_script(script, css))


async def test_the_page_follows_a_job_live_and_reads_with_javascript_off(
    tmp_path: Path, web_ports: int
) -> None:
    ids = [f"web-{i:02d}" for i in range(24)]
    queue = make_queue(tmp_path / "queue", ids, folders=("inbox", "active", "done", "reports"))
    rows = "".join(f"{i},{i}.wav,{MODEL}\n" for i in ids)
    # The failing rows first: they are journaled while the job still runs.
    manifest = f"identity,audio,model\n{HOSTILE},x.wav,{MODEL}\nghost,ghost.wav,{MODEL}\n{rows}"
    shots, downloads = _shots(tmp_path), tmp_path / "downloads"
    downloads.mkdir()
    async with running_emulator(latency_ms=120) as emu:
        slow = {"ENROLLER_MAX_ENROLLMENTS": "1", "ENROLLER_HEARTBEAT_INTERVAL": "1"}
        env = worker_env(queue, emu.base_url, ENROLLER_WEB_PORT=str(web_ports), **slow)
        base = f"http://127.0.0.1:{web_ports}"
        with (tmp_path / "web.log").open("wb") as log:
            web = await anyio.open_process([*WORKER, "web"], env=env, stdout=log, stderr=log)
        try:  # the web server is stopped however the test ends
            worker = await start_worker(env, tmp_path / "worker.log", once=False)
            driver = await _in_thread(lambda: _browser(downloads))
            try:
                await wait_for(
                    lambda: (queue / ".web").is_dir() and any((queue / ".web").iterdir()),
                    30,
                    "enroller web telling its address",
                )
                await _in_thread(lambda: driver.get(base + "/jobs"))
                assert "No active job." in await _in_thread(lambda: _text(driver, "main"))
                await _in_thread(lambda: driver.execute_script("window.__sameDocument = 1"))
                drop(queue, "night.csv", manifest)

                def progress() -> int:  # one script call: see `_text`
                    script = "const b = document.querySelector('#active progress');"
                    return int(driver.execute_script(script + "return b ? b.value : -1;"))

                first = await wait_for(
                    lambda: _in_thread(lambda: progress() >= 1 and progress()),
                    60,
                    "the dropped job's progress on the page",
                )
                await wait_for(
                    lambda: _in_thread(lambda: progress() > first), 60, "progress moving"
                )
                # No reload: the marker set on this document before the drop is still there, and
                # the refresh script says how often it swapped the live part in.
                assert await _in_thread(
                    lambda: driver.execute_script("return window.__sameDocument")
                )
                live = await _in_thread(lambda: driver.find_element(By.ID, "live"))
                assert int(await _in_thread(lambda: live.get_attribute("data-refreshes")) or 0) >= 1
                assert not await _in_thread(lambda: _noscript_shown(driver))  # script on
                await _in_thread(lambda: driver.save_screenshot(str(shots / "web-jobs.png")))
                await _in_thread(lambda: driver.find_element(By.CSS_SELECTOR, "#active a").click())
                failed_so_far = await _in_thread(lambda: _text(driver, "#failures"))
                assert HOSTILE in failed_so_far and "handles are lowercase" in failed_so_far
                await _in_thread(lambda: driver.get(base + "/"))
                rate = lambda: _in_thread(lambda: "/s of" in _text(driver, "#rate"))  # noqa: E731
                await wait_for(rate, 30, "the request rate the heartbeats tell")
                assert "healthy" in await _in_thread(lambda: _text(driver, "#workers"))
                await _in_thread(lambda: driver.save_screenshot(str(shots / "web-overview.png")))
                await _in_thread(lambda: driver.get(base + "/jobs"))
                link = await wait_for(
                    lambda: _in_thread(
                        lambda: driver.find_elements(By.CSS_SELECTOR, "#finished a")
                    ),
                    90,
                    "the job finished",
                )
                await _in_thread(lambda: link[0].click())
                await _check_job_page(driver, shots, downloads)
                job_url = await _in_thread(lambda: driver.current_url)
            finally:
                await _in_thread(driver.quit)
                worker.send_signal(signal.SIGTERM)
                await worker.wait()
            await _check_without_javascript(job_url, downloads)
        finally:
            web.send_signal(signal.SIGTERM)
            await web.wait()
    assert "Traceback" not in (tmp_path / "web.log").read_text(errors="replace")


async def _check_job_page(driver: webdriver.Chrome, shots: Path, downloads: Path) -> None:
    cells = await _in_thread(
        lambda: [
            [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in driver.find_elements(By.CSS_SELECTOR, "#failures tr")[1:]
        ]
    )
    by_identity = {row[0]: row for row in cells}
    assert set(by_identity) == {HOSTILE, "ghost"}  # the hostile identity, as text
    assert "handles are lowercase letters" in by_identity[HOSTILE][3]
    assert "ghost.wav" in by_identity["ghost"][3]  # the missing audio file, named
    assert await _in_thread(lambda: driver.find_elements(By.TAG_NAME, "img")) == []
    chart = await _in_thread(lambda: _text(driver, "#chart"))
    assert "enrolled" in chart and "24" in chart and "failed" in chart
    await _in_thread(lambda: driver.save_screenshot(str(shots / "web-job.png")))
    await _in_thread(lambda: driver.find_element(By.PARTIAL_LINK_TEXT, "failures").click())
    done = await wait_for(
        lambda: [p for p in downloads.glob("*.failures.csv")], 30, "the failures CSV downloaded"
    )
    assert HOSTILE in done[0].read_text()


async def _check_without_javascript(url: str, downloads: Path) -> None:
    """JavaScript off: the server-rendered page holds the data; only the refresh stops."""
    driver = await _in_thread(lambda: _browser(downloads, javascript=False))
    try:
        await _in_thread(lambda: driver.get(url))
        text = await _in_thread(lambda: _text(driver, "main"))
        assert HOSTILE in text and "enrolled" in text and "failures.csv" not in url
        # The browser really runs no script: it shows the page's <noscript> note.
        assert await _in_thread(lambda: _noscript_shown(driver))
    finally:
        await _in_thread(driver.quit)


def test_chromium_is_what_ci_installs() -> None:
    assert shutil.which("chromium") == CHROMIUM
