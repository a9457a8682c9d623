"""`enroller web` over real sockets: its pages on a job a real worker ran on the emulator, and
its safety rules (methods, headers, the token, path traversal, the bind refusal).

The browser's view (refresh without reload, JavaScript off) is tests/e2e/test_web_browser.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from tests.emulator_harness import EmulatorHandle
from tests.support import (
    MODEL,
    drop,
    free_port,
    make_queue,
    make_settings,
    run_once,
    running_web,
    worker_env,
)
from worker.cli import main

EVERYWHERE = "0.0.0.0"  # noqa: S104 - the address the page must refuse without a token
HOSTILE = "<img src=x onerror=alert(1)>"
TOKEN = "s3cret-web-token-for-tests"


async def _ran_job(tmp_path: Path, emulator: EmulatorHandle) -> tuple[Path, str]:
    """A queue where a real run enrolled `ann` and failed the hostile identity (no audio)."""
    queue = make_queue(tmp_path / "queue", ["ann"])
    rows = f"identity,audio,model\nann,ann.wav,{MODEL}\n{HOSTILE},x.wav,{MODEL}\n"
    drop(queue, "night.csv", rows)
    assert await run_once(make_settings(queue, emulator.base_url)) == 1  # one failure
    [report] = (queue / "reports").glob("night-*.report.json")
    return queue, report.name.removesuffix(".report.json")


async def _get(url: str, **kw: object) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as http, http.get(url, **kw) as answer:  # type: ignore[arg-type]
        return answer.status, dict(answer.headers), await answer.text()


async def test_pages_show_a_real_job_escaped_with_its_failure_and_files(
    tmp_path: Path, emulator: EmulatorHandle
) -> None:
    queue, job = await _ran_job(tmp_path, emulator)
    settings = make_settings(queue, emulator.base_url, web_port=free_port())
    async with running_web(settings) as base:
        status, _, overview = await _get(base + "/")
        assert status == 200
        [folders] = re.findall(r'<table id="folders">.*?</table>', overview, re.S)
        assert re.findall(r'<td class="num">(\d+)</td>', folders) == ["0", "0", "1", "0", "1"]
        assert "No worker running" in overview
        status, _, jobs = await _get(base + "/jobs")
        assert status == 200 and f'href="/jobs/{job}"' in jobs and "with failures" in jobs
        status, _, page = await _get(f"{base}/jobs/{job}")
        assert status == 200
        # The hostile identity is text: escaped, never markup.
        assert "&lt;img src=x onerror=alert(1)&gt;" in page
        assert "<img" not in page
        [table] = re.findall(r'<table id="failures">.*?</table>', page, re.S)
        [cells] = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td>", table)
        assert cells[0] == "&lt;img src=x onerror=alert(1)&gt;"  # the identity column
        assert "handles are lowercase letters" in cells[3]  # the reason the worker gave
        assert re.search(r'class="bar outcome-enrolled".*?>1</text>', page, re.S)  # the chart
        status, headers, csv_text = await _get(f"{base}/jobs/{job}/files/failures")
        assert status == 200 and headers["Content-Type"].startswith("text/csv")
        assert HOSTILE in csv_text  # the download is the file as it is
        status, _, report = await _get(f"{base}/jobs/{job}/files/report")
        assert status == 200 and json.loads(report)["job_id"] == job
        status, _, doc = await _get(f"{base}/api/jobs/{job}.json")
        assert status == 200 and json.loads(doc)["counts"]["failed"] == 1


async def test_every_method_but_get_and_head_is_refused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "q", "http://127.0.0.1:9/v1", web_port=free_port())
    async with running_web(settings) as base, aiohttp.ClientSession() as http:
        for path in ("/", "/jobs", "/jobs/x-1", "/api/overview.json", "/static/refresh.js"):
            for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
                async with http.request(method, base + path) as answer:
                    assert answer.status == 405, (method, path)
                    assert answer.headers["X-Content-Type-Options"] == "nosniff"
            async with http.head(base + path) as answer:
                assert answer.status in (200, 404), path


async def test_headers_forbid_inline_script_framing_sniffing_and_caching(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "q", "http://127.0.0.1:9/v1", web_port=free_port())
    async with running_web(settings) as base:
        for path in ("/", "/jobs", "/api/overview.json", "/jobs/nope-1"):
            _, headers, body = await _get(base + path)
            csp = headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert headers["Cache-Control"] == "no-store"
            assert re.search(r"<script(?![^>]*\bsrc=)", body) is None  # no inline script
        status, headers, script = await _get(base + "/static/refresh.js")
        assert status == 200 and headers["Content-Type"].startswith("text/javascript")
        assert "replaceChildren" in script and headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        "/jobs/../../etc/passwd",
        "/jobs/..%2F..%2Fetc%2Fpasswd",
        "/jobs/%2e%2e",
        "/jobs/.health",
        "/jobs/..",
        "/jobs/x-1/files/..%2F..%2F..%2Fetc%2Fpasswd",
        "/jobs/x-1/files/report",
        "/static/..%2Fweb.py",
        "/static/web.py",
        "/api/jobs/..%2F..%2Fetc%2Fpasswd.json",
    ],
)
async def test_no_path_outside_the_queue_is_served(tmp_path: Path, path: str) -> None:
    queue = tmp_path / "q"
    (queue / "reports").mkdir(parents=True)
    (queue / "secret.report.json").write_text('{"job_id": "outside"}')  # above reports/
    settings = make_settings(queue, "http://127.0.0.1:9/v1", web_port=free_port())
    async with running_web(settings) as base:
        status, _, body = await _get(URL(base + path, encoded=True))  # type: ignore[arg-type]
    assert status == 404, path
    assert "root:" not in body and "outside" not in body and "import" not in body


async def test_without_a_token_only_loopback_host_names_are_answered(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "q", "http://127.0.0.1:9/v1", web_port=free_port())
    async with running_web(settings) as base:
        port = settings.web_port
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", "127.0.0.1"):
            assert (await _get(base + "/", headers={"Host": host}))[0] == 200, host
        for host in (f"rebind.example:{port}", "evil.example", f"10.1.2.3:{port}"):
            status, headers, _ = await _get(base + "/", headers={"Host": host})
            assert status == 403 and headers["X-Content-Type-Options"] == "nosniff", host


async def test_a_token_is_asked_as_bearer_or_through_the_login_cookie(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "q", "http://127.0.0.1:9/v1", web_port=free_port(), web_token=TOKEN
    )
    async with running_web(settings) as base:
        status, headers, _ = await _get(base + "/api/overview.json")
        assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
        status, _, _ = await _get(base + "/", headers={"Authorization": "Bearer wrong"})
        assert status == 401
        status, _, body = await _get(base + "/", headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and TOKEN not in body
        jar = aiohttp.CookieJar(unsafe=True)  # keeps cookies of an IP address, as browsers do
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            async with http.get(base + "/", headers={"Accept": "text/html"}) as answer:
                assert answer.status == 200 and str(answer.url).endswith("/login")  # sent there
            async with http.post(base + "/login", data={"token": "wrong"}) as answer:
                assert answer.status == 401
            login = base + "/login"
            async with http.post(login, data={"token": TOKEN}, allow_redirects=False) as answer:
                assert answer.status == 303
                cookie = answer.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
            async with http.get(base + "/jobs") as answer:  # the cookie jar sends it
                assert answer.status == 200 and "Active" in await answer.text()


def test_any_address_but_loopback_is_refused_without_a_token(tmp_path: Path) -> None:
    env = worker_env(tmp_path / "q", "http://127.0.0.1:9/v1", ENROLLER_WEB_PORT=str(free_port()))
    for host in (EVERYWHERE, "192.0.2.1"):  # the rule itself: tests/unit/test_web_units.py
        done = subprocess.run(
            [sys.executable, "-m", "worker", "web", "--web-host", host],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 2, host
        assert f"refuses to listen on {host} without a token" in done.stderr
        assert "ENROLLER_WEB_TOKEN" in done.stderr


async def test_with_a_token_it_listens_everywhere_and_status_tells_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    settings = make_settings(
        tmp_path / "q", "http://127.0.0.1:9/v1", web_port=port, web_host=EVERYWHERE, web_token=TOKEN
    )
    async with running_web(settings) as base:
        status, _, _ = await _get(base + "/jobs")
        assert status == 401
        assert main(["status", "--queue-dir", str(tmp_path / "q")]) == 0
        out = capsys.readouterr().out
        assert f":{port}/ (enroller web)" in out and TOKEN not in out
    assert main(["status", "--queue-dir", str(tmp_path / "q")]) == 0
    assert "enroller web" not in capsys.readouterr().out  # stopped: its address is gone


async def test_with_redis_the_overview_lists_the_fleet(tmp_path: Path) -> None:
    from redis.asyncio import Redis

    from tests.redis_harness import running_redis
    from worker.fleet.keys import AccountKeys
    from worker.fleet.membership import FleetMembership

    with running_redis(tmp_path) as server:
        client = Redis.from_url(server.url)
        await FleetMembership(client, AccountKeys("acct-1"), "host-a:7", interval=5).beat(jobs=2)
        await client.aclose()
        settings = make_settings(
            tmp_path / "q", "http://127.0.0.1:9/v1", web_port=free_port(), redis_url=server.url
        )
        async with running_web(settings) as base:
            status, _, page = await _get(base + "/")
    assert status == 200, page
    assert "account acct-1: 1 worker(s)" in page and "host-a:7 on" in page and "(2 jobs)" in page
