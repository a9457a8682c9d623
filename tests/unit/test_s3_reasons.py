"""What each S3 failure tells a person (pure: botocore's own exception objects, no server).

The real server's answers are tested in tests/e2e/test_s3_objects.py; here are the ones
SeaweedFS cannot give: a bucket in another region (AWS answers 301 PermanentRedirect with
x-amz-bucket-region), and an access key the server does not know.
"""

from __future__ import annotations

from botocore.exceptions import ClientError, NoCredentialsError

from worker.objects.s3errors import reason_for
from worker.objects.uri import S3Uri

URI = S3Uri("calls-eu", "2026/c1.wav")
ENDPOINT = "https://user:hunter2@s3.example.test"


def client_error(status: int, code: str, headers: dict[str, str] | None = None) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": "signature X-Amz-Credential=AKIA… (never shown)"},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}},
    }
    return ClientError(response, "GetObject")  # type: ignore[arg-type]


def test_a_bucket_in_another_region_names_the_region() -> None:
    exc = client_error(301, "PermanentRedirect", {"x-amz-bucket-region": "eu-west-1"})
    reason = reason_for(exc, URI, ENDPOINT, 3)
    assert reason == (
        "bucket calls-eu is in region eu-west-1: set AWS_REGION to it "
        "(S3 redirected, PermanentRedirect)"
    )
    assert "another region" in reason_for(client_error(301, "301"), URI, ENDPOINT, 3)


def test_denied_and_unknown_keys_say_what_is_needed_and_nothing_secret() -> None:
    for code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        reason = reason_for(client_error(403, code), URI, ENDPOINT, 3)
        assert reason.startswith("access denied (") and "s3:GetObject" in reason
        assert "Credential" not in reason and "hunter2" not in reason


def test_no_credentials_and_an_unreachable_endpoint_mask_the_url() -> None:
    assert reason_for(NoCredentialsError(), URI, ENDPOINT, 3).startswith("no AWS credentials")
    reason = reason_for(ConnectionRefusedError(), URI, ENDPOINT, 3)
    assert reason == "cannot reach the S3 endpoint https://********@s3.example.test (3 attempts)"
