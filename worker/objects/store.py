"""Reading objects from S3: a HEAD, and a download streamed to a file and hashed as it comes.

Owns: the one S3 client of a process (aiobotocore, on an event loop of its own in a daemon
thread, so the job's blocking preflight threads and the one-shot commands call it alike), what
each failure means to a person (`reason_for`: no bucket, no key, access denied, no
credentials, an endpoint that does not answer, another region, an object changed mid-download),
and the download itself: refused from its HEAD when too large, within the work folder's budget
(`worker.objects.budget`), `If-Match` the HEAD's ETag, written to a temporary name, hashed while
written, fsynced and renamed, so a kill at any instant leaves at most a `.fetch-*.tmp` file
(`sweep_fetches` removes it).

Why aiobotocore: it is botocore's own credential and configuration chain (environment keys and
session token, `AWS_PROFILE` and the shared files, IRSA web identity, container and instance
metadata, `AWS_REGION`, `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`), so the worker reads S3 the
way the users' other AWS tools already do. Credentials, signatures and presigned URLs never
enter a reason: the reasons name the bucket, the key, the endpoint (user-info masked) and the
S3 error code only.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from worker.base.crashpoints import crash_point
from worker.base.errors import EnrollmentFailed
from worker.base.fsutil import fsync_dir, remove_leftovers, sha256_file
from worker.objects.budget import DiskBudget, OverBudget
from worker.objects.s3errors import (
    NoSuchBucket,
    ObjectChanged,
    changed_reason,
    reason_for,
    status_of,
)
from worker.objects.uri import S3Uri

T = TypeVar("T")
CHUNK_BYTES = 1 << 20  # read and hashed a MiB at a time: memory stays flat for any object
FETCH_PREFIX, FETCH_SUFFIX = ".fetch-", ".tmp"
FETCHED_SUFFIX = ".s3"


class ObjectUnavailable(EnrollmentFailed):
    """An object cannot be read (missing, denied, too large, changed…): the reason says which."""


@dataclass(frozen=True, slots=True)
class ObjectHead:
    size: int
    etag: str  # as S3 sends it, quotes and all: `If-Match` wants it so
    version: str | None  # the version id on a versioned bucket


@dataclass(frozen=True, slots=True)
class Fetched:
    """One object downloaded: where, its bytes' hash and size, and which version it was."""

    uri: S3Uri
    path: Path
    sha256: str
    size: int
    etag: str
    version: str | None
    reused: bool = False  # found complete in the folder (a killed run's): no GET was made


def kept_name(owner: str, head: ObjectHead) -> str:
    """The file name of a download kept for `owner` at this ETag and version: a digest, so
    no key or ETag text reaches the file system."""
    tag = hashlib.sha256(f"{owner}\0{head.etag}\0{head.version or ''}".encode()).hexdigest()
    return f"{tag[:40]}{FETCHED_SUFFIX}"


class S3Store:
    """A process's S3 client: `head`, `download`, `read_bytes`; blocking, thread-safe.

    `endpoint_url`, `region` and the keys default to the AWS chain (None); tests pass them.
    `attempts` bounds botocore's retries of one request; the timeouts bound each connection
    and each read, so an endpoint that does not answer ends in a reason, never a hang.
    """

    def __init__(
        self,
        budget: DiskBudget | None = None,
        *,
        attempts: int = 3,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
    ) -> None:
        self.budget = budget or DiskBudget(0)
        self.attempts = attempts
        self._client_args: dict[str, Any] = {
            k: v
            for k, v in (
                ("endpoint_url", endpoint_url),
                ("region_name", region),
                ("aws_access_key_id", access_key),
                ("aws_secret_access_key", secret_key),
            )
            if v is not None
        }
        self._timeouts = (connect_timeout, read_timeout)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._client_cm: Any = None
        self._making: asyncio.Lock | None = None
        self._lock = threading.Lock()

    # --- the loop thread ---------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self._start()
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, loop)
        return future.result()

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="s3", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    async def _s3(self) -> Any:
        """The client, made once: concurrent first calls wait for the one making it."""
        if self._client is not None:
            return self._client
        if self._making is None:  # on the loop's thread: no await since the check above
            self._making = asyncio.Lock()
        async with self._making:
            if self._client is None:
                from aiobotocore.config import AioConfig
                from aiobotocore.session import get_session

                connect, read = self._timeouts
                config = AioConfig(
                    connect_timeout=connect,
                    read_timeout=read,
                    retries={"max_attempts": self.attempts, "mode": "standard"},
                )
                cm = get_session().create_client("s3", config=config, **self._client_args)
                self._client = await cm.__aenter__()
                self._client_cm = cm
        return self._client

    @property
    def endpoint(self) -> str:
        """Where requests go (for messages; user-info masked by the reasons that name it)."""
        try:
            return str(self._run(self._endpoint()))
        except Exception:
            return "the S3 endpoint"

    async def _endpoint(self) -> str:
        return str((await self._s3()).meta.endpoint_url)

    def close(self) -> None:
        """Close the client and stop the loop thread (idempotent)."""
        with self._lock:
            loop, self._loop = self._loop, None
            thread, self._thread = self._thread, None
        if loop is None or thread is None:
            return
        if self._client_cm is not None:
            cm, self._client_cm, self._client = self._client_cm, None, None
            asyncio.run_coroutine_threadsafe(cm.__aexit__(None, None, None), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
        self._making = None  # bound to the closed loop; a later call makes all anew

    # --- requests ----------------------------------------------------------------------------

    def head(self, uri: S3Uri) -> ObjectHead:
        """The object's size, ETag and version; raises `ObjectUnavailable` with the reason."""
        try:
            return self._run(self._head(uri))
        except Exception as exc:
            raise ObjectUnavailable(self._reason(exc, uri)) from None

    async def _head(self, uri: S3Uri) -> ObjectHead:
        s3 = await self._s3()
        try:
            answer = await s3.head_object(Bucket=uri.bucket, Key=uri.key)
        except Exception as exc:
            await self._tell_404(s3, exc, uri)
            raise
        return ObjectHead(
            size=int(answer["ContentLength"]),
            etag=str(answer.get("ETag", "")),
            version=answer.get("VersionId"),
        )

    async def _tell_404(self, s3: Any, exc: Exception, uri: S3Uri) -> None:
        """A HEAD's 404 has no body: ask the bucket, to say which of the two is missing."""
        from botocore.exceptions import ClientError

        if not isinstance(exc, ClientError) or status_of(exc) != 404:
            return
        try:
            await s3.head_bucket(Bucket=uri.bucket)
        except ClientError as bucket_exc:
            if status_of(bucket_exc) == 404:
                raise NoSuchBucket(uri.bucket) from None

    def _reason(self, exc: BaseException, uri: S3Uri) -> str:
        return reason_for(exc, uri, self.endpoint, self.attempts)

    def download(
        self,
        uri: S3Uri,
        dest_dir: Path,
        max_bytes: int,
        expected: ObjectHead | None = None,
        keep_as: str | None = None,
    ) -> Fetched:
        """Stream the object into `dest_dir` (blocking); raises `ObjectUnavailable`.

        `expected` is a HEAD made earlier (else one is made now): the GET asks `If-Match` its
        ETag, so an object replaced since is refused, never half-mixed. Over `max_bytes`, it is
        refused from the HEAD before a byte is downloaded.

        `keep_as` names the download after its owner (`kept_name`: an enrollment's key and the
        object), and the HEAD's ETag and version are part of the name: a download a killed run
        completed is found under it and used again, with no GET, only while the object's ETag
        and version still match.
        """
        head = expected or self.head(uri)
        if keep_as is not None:
            final = dest_dir / kept_name(keep_as, head)
            if final.exists():
                return Fetched(
                    uri,
                    final,
                    sha256_file(final),
                    final.stat().st_size,
                    head.etag,
                    head.version,
                    reused=True,
                )
        if head.size > max_bytes:
            raise ObjectUnavailable(
                f"is {head.size} bytes, over the {max_bytes}-byte limit for one audio "
                "(seen from its HEAD; nothing was downloaded)"
            )
        try:
            with self.budget.reserve(head.size):
                name = kept_name(keep_as, head) if keep_as is not None else None
                return self._fetch(uri, dest_dir, head, name)
        except OverBudget as exc:
            raise ObjectUnavailable(str(exc)) from None

    def _fetch(
        self, uri: S3Uri, dest_dir: Path, head: ObjectHead, name: str | None = None
    ) -> Fetched:
        dest_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=FETCH_PREFIX, suffix=FETCH_SUFFIX)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                sha, size = self._stream(uri, head, out)
                out.flush()
                os.fsync(out.fileno())
            final = dest_dir / (name or f"{sha}-{os.urandom(4).hex()}{FETCHED_SUFFIX}")
            os.replace(tmp, final)
            fsync_dir(dest_dir)
            crash_point("objects.fetched")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return Fetched(uri, final, sha, size, head.etag, head.version)

    def _stream(self, uri: S3Uri, head: ObjectHead, out: Any) -> tuple[str, int]:
        """GET the object and write it to `out` a chunk at a time, hashing as it goes."""
        try:
            body = self._run(self._get(uri, head))
        except Exception as exc:
            raise ObjectUnavailable(self._reason(exc, uri)) from None
        digest, size = hashlib.sha256(), 0
        try:
            while chunk := self._run(body.read(CHUNK_BYTES)):
                size += len(chunk)
                if size > head.size:
                    raise ObjectUnavailable(changed_reason(head, "more bytes than its HEAD said"))
                digest.update(chunk)
                out.write(chunk)
                crash_point("objects.streaming")
        except ObjectUnavailable:
            raise
        except Exception as exc:
            raise ObjectUnavailable(self._reason(exc, uri)) from None
        finally:
            body.close()
        if size != head.size:
            said = f"{size} bytes, its HEAD said {head.size}"
            raise ObjectUnavailable(changed_reason(head, said))
        return digest.hexdigest(), size

    async def _get(self, uri: S3Uri, head: ObjectHead) -> Any:
        s3 = await self._s3()
        args: dict[str, Any] = {"Bucket": uri.bucket, "Key": uri.key}
        if head.etag:
            args["IfMatch"] = head.etag
        if head.version:
            args["VersionId"] = head.version
        answer = await s3.get_object(**args)
        if head.etag and answer.get("ETag") and answer["ETag"] != head.etag:
            answer["Body"].close()
            raise ObjectChanged(changed_reason(head, f"the GET answered ETag {answer['ETag']}"))
        return answer["Body"]

    def read_bytes(self, uri: S3Uri, max_bytes: int) -> bytes:
        """A small object whole (a manifest), refused over `max_bytes` from its HEAD."""
        head = self.head(uri)
        if head.size > max_bytes:
            raise ObjectUnavailable(f"is {head.size} bytes, over the limit of {max_bytes}")
        with tempfile.TemporaryDirectory() as tmp:
            fetched = self._fetch(uri, Path(tmp), head)
            return fetched.path.read_bytes()


def sweep_fetches(work_dir: Path) -> int:
    """Remove what a killed run left half-downloaded (`.fetch-*.tmp`); complete downloads stay,
    for `download(keep_as=…)` to find while their ETag matches. Returns how many (blocking)."""
    return remove_leftovers(work_dir, FETCH_PREFIX, FETCH_SUFFIX)
