"""What is said about the settings rather than what they are: which ones hold URLs or secrets,
every secret value the log redactor must hide, and the hints a setting's value calls for.

Owns: `url_settings`, `secret_settings`, `secret_values` (for the masking of logs and the
refusal of secret flags), `key_file_warning` and `api_url_version_hint`. The settings
themselves, their names and validation are `settings.py`'s.
"""

from __future__ import annotations

from typing import get_args
from urllib.parse import urlsplit

from pydantic import SecretStr

from worker.base.masking import mask_url_userinfo, url_secrets
from worker.config.keyfile import too_open_warning
from worker.config.settings import Settings, env_name, url_marker


def url_settings() -> list[str]:
    """Settings that hold a URL, whose user-info is masked wherever they are shown."""
    return [n for n in Settings.model_fields if n.endswith("_url") or url_marker(n) is not None]


def secret_settings() -> list[str]:
    """Settings that are secrets: taken from the environment, `.env` or a file, never a flag."""
    return [
        name
        for name, field in Settings.model_fields.items()
        if field.annotation is SecretStr or SecretStr in get_args(field.annotation)
    ]


def secret_values(settings: Settings) -> list[str]:
    """Every secret the process holds, for the log redactor: keys, passwords, URL user-info."""
    out = [
        value.get_secret_value()
        for name in secret_settings()
        if isinstance(value := getattr(settings, name), SecretStr)
    ]
    for name in url_settings():
        value = getattr(settings, name)
        if isinstance(value, str):
            out.extend(url_secrets(value))
    return [s for s in out if s]


def key_file_warning(settings: Settings) -> str | None:
    """The warning (as ssh gives) when the key file can be read by group or others."""
    if settings.api_key_file is None or settings.key_file_mode is None:
        return None
    return too_open_warning(settings.api_key_file, settings.key_file_mode)


def api_url_version_hint(api_url: str) -> str:
    """Why a 404 on `GET /user` may be the URL's fault: the API lives under `/v1`, and a URL
    without it reaches the server but no route (the user saw a bare "FAIL key: 404"). "" when
    the URL already ends with `/v1`."""
    path = urlsplit(api_url).path.rstrip("/")
    if path.endswith("/v1"):
        return ""
    fixed = mask_url_userinfo(api_url.rstrip("/") + "/v1")
    return f"; {env_name('api_url')} must include the API's version: try {fixed}"
