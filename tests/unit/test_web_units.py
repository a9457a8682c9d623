"""The status page's small rules with plain values: which addresses are loopback, the URL
people type, the heartbeat's request rate, the address files `enroller status` reads, the
login cookie, and the chart's bars."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from worker.commands.web_data import chart
from worker.commands.web_guard import WebRefused, check_bind, is_loopback, session_value
from worker.config.settings import Settings
from worker.ops.metrics import Metrics
from worker.ops.operations import RequestRate
from worker.ops.webaddress import public_url, read_web_addresses, web_address_path

EVERYWHERE = "0.0.0.0"  # noqa: S104 - the address the page must refuse without a token


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("[::1]", True),
     ("localhost", True), (EVERYWHERE, False), ("::", False), ("10.0.0.5", False),
     ("example.org", False), ("", False)],
)  # fmt: skip
def test_only_loopback_needs_no_token(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    settings = Settings(web_host=host or "x", web_token=None)
    if loopback:
        check_bind(settings)
    else:
        with pytest.raises(WebRefused, match="ENROLLER_WEB_TOKEN"):
            check_bind(settings)
        check_bind(Settings(web_host=host or "x", web_token="t0ken-t0ken"))


def test_the_url_people_type() -> None:
    assert public_url("127.0.0.1", 8780) == "http://127.0.0.1:8780/"
    assert public_url("::1", 8780) == "http://[::1]:8780/"
    assert public_url(EVERYWHERE, 80) == f"http://{socket.gethostname()}:80/"


def test_the_heartbeat_tells_requests_per_second_between_beats() -> None:
    metrics, now = Metrics(), [100.0]
    rate = RequestRate(metrics, clock=lambda: now[0])
    assert rate.sample() == {"requests_sent": 0, "requests_per_s": None}  # no interval yet
    for _ in range(30):
        metrics.on_attempt("GET", "/user", "200")
    now[0] += 5.0
    assert rate.sample() == {"requests_sent": 30, "requests_per_s": 6.0}
    assert rate.sample() == {"requests_sent": 30, "requests_per_s": None}  # no time passed


def test_status_reads_only_fresh_address_files(tmp_path: Path) -> None:
    now = time.time()
    for host, pid, age in (("a", 1, 2.0), ("b", 2, 300.0)):
        path = web_address_path(tmp_path, host, pid)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"url": f"http://{host}:1/", "at": now - age}))
    (tmp_path / ".web" / "junk.json").write_text("[")
    assert read_web_addresses(tmp_path, max_age=30.0, now=now) == ["http://a:1/"]
    assert read_web_addresses(tmp_path / "nowhere", max_age=30.0) == []


def test_the_login_cookie_is_not_the_token() -> None:
    value = session_value("my-token")
    assert "my-token" not in value and value == session_value("my-token")
    assert value != session_value("my-token2")


def test_the_chart_keeps_the_outcomes_order_and_scales_to_the_largest() -> None:
    bars = chart({"failed": 5, "enrolled": 20, "skipped": 0, "other": 1})
    assert [(b["outcome"], b["count"], b["share"]) for b in bars] == [
        ("enrolled", 20, 1.0), ("failed", 5, 0.25), ("other", 1, 0.05)
    ]  # fmt: skip
    assert chart({}) == []
