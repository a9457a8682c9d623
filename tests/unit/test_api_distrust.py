"""Issue 27, the pure rules: bounded bodies, the request deadline, lists that must end, answers
checked against the question, redirects named without secrets."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator

import pytest

from worker.api.bodies import BodyTooLarge, BodyUnreadable, deadline, read_bounded
from worker.api.checks import check_about, mismatches
from worker.api.errors import InvalidResponse, OutcomeUnknown, redirect_error
from worker.api.pages import Bounds, justified_pages
from worker.api.schemas import Page


async def chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_a_body_within_the_cap_is_read_whole_plain_or_compressed() -> None:
    body = b'{"a": 1}' * 100
    assert await read_bounded(chunks(body), {}, 800) == body
    assert (
        await read_bounded(chunks(gzip.compress(body)), {"Content-Encoding": "gzip"}, 800) == body
    )
    deflated = zlib.compress(body)
    assert await read_bounded(chunks(deflated), {"Content-Encoding": "deflate"}, 800) == body


async def test_a_body_past_the_cap_stops_there_even_when_it_inflates_without_end() -> None:
    with pytest.raises(BodyTooLarge, match="answer larger than 799 bytes"):
        await read_bounded(chunks(b"x" * 800), {}, 799)
    with pytest.raises(BodyTooLarge):  # told by Content-Length: not read at all
        await read_bounded(chunks(b""), {"Content-Length": "10000000"}, 1000)
    bomb = gzip.compress(b" " * (64 << 20))  # 64 MiB from ~64 KiB, as one network chunk
    with pytest.raises(BodyTooLarge):
        await read_bounded(chunks(bomb, len(bomb)), {"Content-Encoding": "gzip"}, 1 << 20)


async def test_an_unknown_encoding_or_a_damaged_stream_is_unreadable() -> None:
    with pytest.raises(BodyUnreadable, match="did not ask for: 'br'"):
        await read_bounded(chunks(b"x"), {"Content-Encoding": "br"}, 100)
    with pytest.raises(BodyUnreadable, match="damaged"):
        await read_bounded(chunks(b"not gzip at all"), {"Content-Encoding": "gzip"}, 100)


def test_the_deadline_grows_with_the_upload_at_the_minimum_rate() -> None:
    assert deadline(0, request_timeout=30, min_rate=65536) == 30
    assert deadline(50 * 65536, request_timeout=30, min_rate=65536) == 80


def page(n: int, **headers: int | None) -> Page[int]:
    return Page[int](items=[n], fingerprint=str(n), **headers)


def test_the_pages_a_list_justifies() -> None:
    assert justified_pages(page(1), 100) == 100
    assert justified_pages(page(1, page_total=1_000_000), 100) == 100
    assert justified_pages(page(1, page_total=10, item_total=25, page_size=5), 100) == 5
    assert justified_pages(page(1, page_total=3, item_total=1000, page_size=5), 100) == 3


def test_a_repeated_page_or_one_past_the_cap_ends_the_list() -> None:
    bounds = Bounds("/r", 3)
    bounds.check(1, page(1))
    with pytest.raises(InvalidResponse, match=r"after 2 pages \(page 2 repeats page 1\)"):
        bounds.check(2, page(1))
    bounds = Bounds("/r", 2)
    bounds.check(1, page(1))
    bounds.check(2, page(2))
    with pytest.raises(InvalidResponse, match="more than ENROLLER_MAX_LIST_PAGES"):
        bounds.check(3, page(3))


def test_answers_about_another_resource() -> None:
    asked = {"handle": "vp", "identity": "ann", "model": None}
    assert mismatches(asked, {"handle": "vp", "identity": "ann", "model": "x"}) == []
    assert mismatches(asked, {"handle": "vp", "identity": None}) == []  # not said: no mismatch
    assert mismatches(asked, {"handle": "vp", "identity": "bob"}) == [
        "identity: asked 'ann', answered 'bob'"
    ]
    with pytest.raises(InvalidResponse):
        check_about(asked, {"identity": "bob"}, method="GET", route="/r")
    with pytest.raises(OutcomeUnknown) as info:
        check_about(asked, {"identity": "bob"}, method="POST", route="/r")
    assert info.value.kind == "mismatch"


def test_a_redirect_is_named_without_its_query_or_user() -> None:
    error = redirect_error(302, "https://u:secret@evil.example/v1/x?token=abc", method="GET")
    assert str(error).endswith(
        "the API answered 302 (to https://evil.example/v1/x): check ENROLLER_API_URL"
    )
    assert "secret" not in str(error) and "abc" not in str(error)
    assert "(to nowhere)" in str(redirect_error(301, None))
