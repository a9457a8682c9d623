"""worker/objects against a real S3 server (SeaweedFS): the streamed, hashed download and each
bad input of issue 29 point 4, each with its reason and nothing secret in it."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.s3_harness import (
    ACCESS_KEY,
    DENIED_KEY,
    DENIED_SECRET,
    REGION,
    SECRET_KEY,
    S3Server,
)
from worker.objects.budget import DiskBudget
from worker.objects.store import ObjectUnavailable, S3Store, sweep_fetches
from worker.objects.uri import S3Uri

BUCKET = "objects-test"


def store_for(server: S3Server, **kwargs: object) -> S3Store:
    args: dict[str, object] = {
        "endpoint_url": server.endpoint,
        "region": REGION,
        "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY,
    }
    args.update(kwargs)
    return S3Store(**args)  # type: ignore[arg-type]


@pytest.fixture
def store(s3_server: S3Server) -> Iterator[S3Store]:
    s3_server.bucket(BUCKET)
    st = store_for(s3_server)
    yield st
    st.close()


def assert_no_secret(text: str) -> None:
    for secret in (SECRET_KEY, DENIED_SECRET, "Signature=", "X-Amz-Credential"):
        assert secret not in text


def test_download_streams_hashes_and_names_the_file_by_its_bytes(
    s3_server: S3Server, store: S3Store, tmp_path: Path
) -> None:
    body = bytes(range(256)) * 20_000  # 5 MiB: several chunks
    etag = s3_server.put(BUCKET, "calls/a.wav", body)
    got = store.download(S3Uri(BUCKET, "calls/a.wav"), tmp_path, max_bytes=len(body))
    assert got.sha256 == hashlib.sha256(body).hexdigest()
    assert got.size == len(body)
    assert got.etag.strip('"') == etag
    assert got.path.read_bytes() == body
    assert got.path.name.startswith(got.sha256)
    assert [p.name for p in tmp_path.iterdir()] == [got.path.name]  # no temp file left
    assert sweep_fetches(tmp_path) == 0  # a complete download is not a leftover


def test_a_kept_download_is_used_again_only_while_its_etag_matches(
    s3_server: S3Server, store: S3Store, tmp_path: Path
) -> None:
    uri = S3Uri(BUCKET, "kept.wav")
    s3_server.put(BUCKET, "kept.wav", b"one" * 1000)
    first = store.download(uri, tmp_path, 10_000, keep_as="job/enrollment")
    again = store.download(uri, tmp_path, 10_000, keep_as="job/enrollment")
    assert not first.reused and again.reused and again.path == first.path
    assert again.sha256 == first.sha256
    s3_server.put(BUCKET, "kept.wav", b"two" * 1000)  # a new ETag: the kept file is not it
    third = store.download(uri, tmp_path, 10_000, keep_as="job/enrollment")
    assert not third.reused and third.path != first.path
    assert third.path.read_bytes() == b"two" * 1000


def test_over_size_is_refused_from_the_head(
    s3_server: S3Server, store: S3Store, tmp_path: Path
) -> None:
    s3_server.put(BUCKET, "big.wav", b"x" * 5000)
    with pytest.raises(ObjectUnavailable, match=r"4999-byte limit.*nothing was downloaded"):
        store.download(S3Uri(BUCKET, "big.wav"), tmp_path, max_bytes=4999)
    assert not list(tmp_path.iterdir())


def test_over_the_whole_disk_budget_is_refused(s3_server: S3Server, tmp_path: Path) -> None:
    s3_server.bucket(BUCKET)
    s3_server.put(BUCKET, "budget.wav", b"y" * 3000)
    st = store_for(s3_server, budget=DiskBudget(2000))
    try:
        with pytest.raises(ObjectUnavailable, match="ENROLLER_WORK_DIR_MAX_BYTES"):
            st.download(S3Uri(BUCKET, "budget.wav"), tmp_path, max_bytes=10_000)
    finally:
        st.close()


def test_budget_holds_a_second_download_until_the_first_ends() -> None:
    waiting, entered = threading.Event(), threading.Event()
    budget = DiskBudget(100, waiting=lambda size: waiting.set())

    def second() -> None:
        with budget.reserve(60):
            entered.set()

    with budget.reserve(60):
        waiter = threading.Thread(target=second)
        waiter.start()
        assert waiting.wait(10)  # it asked, and must wait: 60 + 60 > 100
        assert not entered.is_set() and budget.used == 60
    waiter.join(10)
    assert entered.is_set() and budget.used == 0


def test_no_such_key_and_no_such_bucket(store: S3Store, tmp_path: Path) -> None:
    with pytest.raises(ObjectUnavailable, match=f"no such object: nope.wav in bucket {BUCKET}"):
        store.download(S3Uri(BUCKET, "nope.wav"), tmp_path, max_bytes=1000)
    with pytest.raises(ObjectUnavailable, match="no such bucket: no-such-bucket-here"):
        store.head(S3Uri("no-such-bucket-here", "a.wav"))


def test_access_denied_names_the_permission(s3_server: S3Server, tmp_path: Path) -> None:
    s3_server.bucket(BUCKET)
    s3_server.put(BUCKET, "private.wav", b"z" * 100)
    st = store_for(s3_server, access_key=DENIED_KEY, secret_key=DENIED_SECRET)
    try:
        with pytest.raises(ObjectUnavailable, match="access denied") as caught:
            st.download(S3Uri(BUCKET, "private.wav"), tmp_path, max_bytes=1000)
    finally:
        st.close()
    assert "s3:GetObject" in str(caught.value)
    assert_no_secret(str(caught.value))


def test_no_credentials(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    st = S3Store(endpoint_url=s3_server.endpoint, region=REGION)
    try:
        with pytest.raises(ObjectUnavailable, match="no AWS credentials found"):
            st.head(S3Uri(BUCKET, "a.wav"))
    finally:
        st.close()


def test_an_endpoint_that_does_not_answer_ends_in_a_reason(tmp_path: Path) -> None:
    # A socket that accepts connections and never answers: each attempt times out.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        st = S3Store(
            endpoint_url=f"http://127.0.0.1:{port}",
            region=REGION,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            attempts=2,
            connect_timeout=0.5,
            read_timeout=0.5,
        )
        try:
            with pytest.raises(ObjectUnavailable, match=r"did not answer in time \(2 attempts\)"):
                st.head(S3Uri(BUCKET, "a.wav"))
        finally:
            st.close()


def test_an_endpoint_that_refuses_connections(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        st = S3Store(
            endpoint_url=f"http://127.0.0.1:{port}",
            region=REGION,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            attempts=2,
        )
        try:
            with pytest.raises(ObjectUnavailable, match="cannot reach the S3 endpoint"):
                st.head(S3Uri(BUCKET, "a.wav"))
        finally:
            st.close()


def test_an_object_replaced_after_its_head_is_refused(
    s3_server: S3Server, store: S3Store, tmp_path: Path
) -> None:
    s3_server.put(BUCKET, "moving.wav", b"first" * 1000)
    head = store.head(S3Uri(BUCKET, "moving.wav"))
    s3_server.put(BUCKET, "moving.wav", b"second" * 1000)
    with pytest.raises(ObjectUnavailable, match="changed during the download"):
        store.download(S3Uri(BUCKET, "moving.wav"), tmp_path, max_bytes=10_000, expected=head)
    assert not list(tmp_path.iterdir())


def _aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS variable of the caller's; no ~/.aws; no instance metadata."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_the_aws_chain_environment_with_aws_endpoint_url(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys from the environment, the generic AWS_ENDPOINT_URL, AWS_REGION: nothing passed."""
    s3_server.bucket(BUCKET)
    s3_server.put(BUCKET, "chain/env.wav", b"e" * 321)
    _aws_env(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    st = S3Store()
    try:
        assert st.head(S3Uri(BUCKET, "chain/env.wav")).size == 321
    finally:
        st.close()


def test_the_aws_chain_a_profile_in_the_shared_files(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS_PROFILE: keys in the credentials file, region and S3 endpoint in the config file."""
    s3_server.bucket(BUCKET)
    s3_server.put(BUCKET, "chain/profile.wav", b"p" * 123)
    _aws_env(monkeypatch, tmp_path)
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[voice]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    config = tmp_path / "config"
    config.write_text(
        f"[profile voice]\nregion = {REGION}\nservices = local\n\n"
        f"[services local]\ns3 =\n  endpoint_url = {s3_server.endpoint}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "voice")
    st = S3Store()
    try:
        assert st.head(S3Uri(BUCKET, "chain/profile.wav")).size == 123
    finally:
        st.close()
