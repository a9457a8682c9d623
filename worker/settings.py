"""Every knob of the worker, in one pydantic-settings model.

Owns: names, defaults, validation and the secret-file indirection of all configuration.
Sources, strongest first: CLI flags (passed in as init values by `cli.py`), environment
variables `ENROLLER_*`, a `.env` file in the working directory, then the defaults below.
`Settings` is built once in the CLI and passed down; no other module reads the environment.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_API_URL = "http://127.0.0.1:8765/v1"


def _default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Settings(BaseSettings):
    """Configuration of one worker process. Field descriptions feed `--help` and the README."""

    model_config = SettingsConfigDict(
        env_prefix="ENROLLER_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    # --- API access (issue "API client") ---
    api_url: str = Field(
        DEFAULT_API_URL, description="Base URL of the API, up to and including /v1."
    )
    api_key: SecretStr | None = Field(None, description="API key sent as Bearer token.")
    api_key_file: Path | None = Field(
        None, description="File holding the API key (container secrets); read at start."
    )
    api_handle: str | None = Field(None, description="User handle for credentials sign-in.")
    api_password: SecretStr | None = Field(None, description="Password for credentials sign-in.")
    owner: str | None = Field(None, description="Default owner for manifests that name none.")
    space: str | None = Field(None, description="Default space for manifests that name none.")

    # --- Rate budget and retries (design.md §5) ---
    rate_limit: float = Field(
        20.0, gt=0, description="Requests per second the whole process may send."
    )
    burst: int = Field(
        1, ge=1, description="Requests that may be sent at once after an idle spell."
    )
    max_in_flight: int = Field(64, ge=1, description="Requests in flight at most.")
    max_uploads: int = Field(8, ge=1, description="Concurrent audio uploads at most.")
    request_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds one request may take (uploads: per read/write, not in total).",
    )
    max_retries: int = Field(
        6, ge=0, description="Retries of a transient failure before the step fails."
    )
    retry_max_time: float = Field(
        120.0, gt=0, description="Seconds a step may spend retrying before it fails."
    )

    # --- Queue (design.md §3) ---
    queue_dir: Path = Field(Path("jobs"), description="Queue root holding inbox/ active/ done/ …")
    audio_root: Path | None = Field(
        None, description="Root that manifest audio paths are relative to (default <queue>/audio)."
    )
    queue_polling: bool = Field(
        False, description="Poll instead of file events (NFS, bind mounts)."
    )
    poll_interval: float = Field(2.0, gt=0, description="Seconds between scans in polling mode.")
    rescan_interval: float = Field(
        30.0, gt=0, description="Seconds between full rescans that back up file events."
    )
    min_age: float = Field(
        2.0, ge=0, description="Seconds an in-place written file must rest before it is taken."
    )
    lease_ttl: float = Field(
        60.0, gt=0, description="Seconds after which an unrenewed lease is stale and taken over."
    )
    max_manifest_bytes: int = Field(
        256 * 1024 * 1024, gt=0, description="Largest manifest accepted, in bytes."
    )
    worker_id: str = Field(
        default_factory=_default_worker_id, description="Name of this worker in leases."
    )

    # --- Engine (issue "enrollment engine") ---
    max_enrollments: int = Field(
        200, ge=1, description="Enrollments in progress at once across all jobs."
    )
    max_jobs: int = Field(
        4, ge=1, description="Jobs run at once; other files wait in inbox/ (or for another worker)."
    )
    credits_recheck: float = Field(
        300.0,
        gt=0,
        description="Seconds computes stay paused after 'Not enough credits' before one retries.",
    )
    shutdown_grace: float = Field(
        20.0, ge=0, description="Seconds in-flight steps get to finish after SIGTERM."
    )

    # --- Operations (issue "operations") ---
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Lowest log level written."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: console on a TTY, JSON lines otherwise."
    )
    metrics_port: int = Field(
        0, ge=0, le=65535, description="Port for Prometheus /metrics and /healthz (0: off)."
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Interface /metrics listens on (0.0.0.0 in a container)."
    )
    heartbeat_interval: float = Field(
        5.0, gt=0, description="Seconds between writes of <queue>/.health/<host>-<pid>.json."
    )
    health_max_age: float = Field(
        30.0, gt=0, description="enroller healthcheck fails when the heartbeat is older."
    )

    @model_validator(mode="after")
    def _read_key_file(self) -> Settings:
        if self.api_key is None and self.api_key_file is not None:
            try:
                key = self.api_key_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(
                    f"api_key_file {self.api_key_file}: cannot be read ({exc.strerror})"
                ) from None
            if not key:
                raise ValueError(f"api_key_file {self.api_key_file}: is empty")
            self.api_key = SecretStr(key)
        return self

    @property
    def resolved_audio_root(self) -> Path:
        return self.audio_root if self.audio_root is not None else self.queue_dir / "audio"


# --- the README table (tests/unit/test_config_table.py keeps README.md equal to this) ---------

_DEFAULT_SHOWN = {"worker_id": "`<hostname>:<pid>`", "audio_root": "`<queue_dir>/audio`"}


def _cell(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Path):
        return f"`{value}`"
    return f"`{value}`"


def settings_markdown_table() -> str:
    """Every setting as one Markdown table: name, env var, flag, default, meaning.

    Generated from the model so the README cannot drift from the code: a test compares them,
    and `enroller config --markdown` prints this for pasting.
    """
    rows = [
        "| setting | env var | flag | default | meaning |",
        "|---|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        if field.annotation is bool:
            flag = f"{flag} / --no-{name.replace('_', '-')}"
        default = _DEFAULT_SHOWN.get(name) or _cell(field.default)
        meaning = (field.description or "").replace("|", "\\|").replace("<", "&lt;")
        rows.append(f"| `{name}` | `ENROLLER_{name.upper()}` | `{flag}` | {default} | {meaning} |")
    return "\n".join(rows) + "\n"
