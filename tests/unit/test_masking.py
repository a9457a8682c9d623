"""URL user-info masking: every credential in a URL is hidden, nothing else is touched."""

from __future__ import annotations

import pytest

from worker.base.masking import MASK, mask_url_userinfo, url_has_userinfo, url_secrets


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("https://bob:s3cret@h/v1", f"https://{MASK}@h/v1"),
        ("https://tok3n@h", f"https://{MASK}@h"),
        ("redis://:pw@cache:6379/0", f"redis://{MASK}@cache:6379/0"),
        ("http://u:p@ss@h/v1", f"http://{MASK}@h/v1"),  # a raw "@" in the password
        ("see URL('https://u:p@h/v1') now", f"see URL('https://{MASK}@h/v1') now"),
        ("a https://u:p@h b http://x:y@k", f"a https://{MASK}@h b http://{MASK}@k"),
    ],
)
def test_user_info_is_masked(text: str, masked: str) -> None:
    assert mask_url_userinfo(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "https://api.example.com/v1",
        "mail bob@example.com",
        "https://h/v1/users/bob@example.com",  # an "@" in the path is not user-info
        "https://h/v1?owner=a@b",
        "",
    ],
)
def test_text_without_url_credentials_is_kept(text: str) -> None:
    assert mask_url_userinfo(text) == text


def test_has_userinfo() -> None:
    assert url_has_userinfo("https://u:p@h/v1")
    assert url_has_userinfo("https://t@h")
    assert not url_has_userinfo("https://h/v1/x@y")


def test_secrets_are_the_password_and_the_whole_user_info_not_the_user_name() -> None:
    assert set(url_secrets("https://bob:p%3Aw@h")) == {"bob:p%3Aw", "p%3Aw", "p:w", "bob:p:w"}
    assert url_secrets("https://t0ken@h") == ["t0ken"]
    assert url_secrets("https://h/v1") == []
