"""What an S3 failure means to a person: one plain reason per kind, nothing secret in it.

Owns: turning botocore's exceptions (and the store's own two) into the reason an enrollment
fails with or `enroller check` prints. A reason names the object, the endpoint (its user-info
masked), the S3 error code and what to do; never a credential, a signature or a presigned URL
(botocore's messages carry none, and only their codes are used here).
"""

from __future__ import annotations

from typing import Any

from worker.base.errors import EnrollmentFailed
from worker.base.masking import mask_url_userinfo
from worker.objects.uri import S3Uri


class NoSuchBucket(EnrollmentFailed):
    """A HEAD's 404 that its bucket's HEAD explains: the bucket does not exist."""


class ObjectChanged(EnrollmentFailed):
    """The GET answered another ETag than the HEAD: the object was replaced in between."""


def changed_reason(head: Any, what: str) -> str:
    return f"changed during the download (ETag {head.etag} at HEAD; {what}): run it again"


def status_of(exc: Any) -> int | None:
    """The HTTP status of a botocore `ClientError`, None for anything else."""
    meta = getattr(exc, "response", None) or {}
    status = meta.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


def _client_reason(exc: Any, uri: S3Uri) -> str:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = status_of(exc)
    if code in ("NoSuchBucket",):
        return f"no such bucket: {uri.bucket}"
    if code in ("NoSuchKey", "NotFound", "404") or status == 404:
        return f"no such object: {uri.key} in bucket {uri.bucket}"
    if code in ("AccessDenied", "Forbidden", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        why = {
            "InvalidAccessKeyId": "the access key is not known to the server",
            "SignatureDoesNotMatch": "the secret key does not match the access key",
        }.get(code, "the credentials may not read it")
        return (
            f"access denied ({why}): reading {uri} needs s3:GetObject on it (and s3:ListBucket "
            "on the bucket, else a missing key also reads as denied)"
        )
    if code in ("PermanentRedirect", "301", "AuthorizationHeaderMalformed") or status == 301:
        region = _bucket_region(exc)
        where = f"region {region}" if region else "another region"
        return f"bucket {uri.bucket} is in {where}: set AWS_REGION to it (S3 redirected, {code})"
    if code in ("PreconditionFailed", "412") or status == 412:
        return "changed during the download (its ETag no longer matches the HEAD): run it again"
    return f"S3 refused the read: {code or status} {error.get('Message', '')}".strip()


def _bucket_region(exc: Any) -> str | None:
    headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    region = headers.get("x-amz-bucket-region") or exc.response.get("Error", {}).get("Region")
    return str(region) if region else None


def reason_for(exc: BaseException, uri: S3Uri, endpoint: str, attempts: int) -> str:
    """The reason `exc` gives a person, for the object `uri` read through `endpoint`."""
    from botocore import exceptions as bx

    where = mask_url_userinfo(endpoint)
    if isinstance(exc, NoSuchBucket):
        return f"no such bucket: {uri.bucket}"
    if isinstance(exc, ObjectChanged):
        return str(exc)
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return (
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE, or run with a role (web identity, container or instance metadata)"
        )
    if isinstance(exc, bx.ClientError):
        return _client_reason(exc, uri)
    if isinstance(exc, bx.ConnectTimeoutError | bx.ReadTimeoutError):
        return f"the S3 endpoint {where} did not answer in time ({attempts} attempts)"
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectionError | ConnectionError):
        return f"cannot reach the S3 endpoint {where} ({attempts} attempts)"
    if isinstance(exc, TimeoutError):
        return f"the S3 endpoint {where} did not answer in time ({attempts} attempts)"
    return f"cannot read {uri}: {type(exc).__name__}"
