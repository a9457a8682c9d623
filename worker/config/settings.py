"""Every knob of the worker, in one pydantic-settings model.

Owns: names, defaults, validation and the secret-file indirection of all configuration. A bad
configuration becomes one plain line per problem in `worker.config.loading`; the README's table
of these settings is rendered by `worker.config.table`.
Sources, strongest first: CLI flags (passed in as init values by `cli.py`), environment
variables `ENROLLER_*`, a `.env` file in the working directory, then the defaults below.
`Settings` is built once in the CLI and passed down; no other module reads a setting from the
environment. Two variables are read where they act because they are not the worker's
settings: the test-only crash points (`worker.base.crashpoints`) and glibc's own malloc
tunables, which `worker.base.memtune` leaves to the operator when set.
Secrets (`SecretStr` fields) come from the environment, `.env` or a file, never from a flag:
a command line is readable by every user of the host.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError, PydanticUndefined
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.config.keyfile import read_key_file

# What happens to a customer already enrolled (README "Customers already enrolled").
Existing = Literal["conflict", "skip", "overwrite"]
Retire = Literal["delete", "keep"]

DEFAULT_API_URL = "http://127.0.0.1:8765/v1"
ENV_PREFIX = "ENROLLER_"
_MODEL_RE = re.compile(r"[a-z0-9][a-z0-9-]*/[a-z0-9][a-z0-9-]*")


class UrlSetting:
    """Marks a setting as a URL (Annotated metadata): checked for a scheme and a host, and its
    user-info masked wherever the configuration is shown. Settings named `*_url` are masked too."""

    def __init__(self, *schemes: str) -> None:
        self.schemes = schemes


def _default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Settings(BaseSettings):
    """Configuration of one worker process. Field descriptions feed `--help` and the README."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    # --- API access (issue "API client") ---
    api_url: Annotated[str, UrlSetting("http", "https")] = Field(
        DEFAULT_API_URL, description="Base URL of the API, up to and including /v1."
    )
    api_key: SecretStr | None = Field(None, description="API key sent as Bearer token.")
    api_key_file: Path | None = Field(
        None,
        description="File holding the API key (container secrets); read at start. "
        "Warns when group or others can read it.",
    )
    api_handle: str | None = Field(None, description="User handle for credentials sign-in.")
    api_password: SecretStr | None = Field(
        None, description="Password for credentials sign-in (8 to 50 characters)."
    )
    owner: str | None = Field(None, description="Default owner for manifests that name none.")
    space: str | None = Field(None, description="Default space for manifests that name none.")
    model: str = Field(
        "phone/v1",  # worker.audio.inspect.DEFAULT_MODEL: the general-purpose current model
        description="Model (handle/version) of enrollments that name none (a Voice ID "
        "manifest never does).",
    )

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
        description="Seconds one request may take in total, its answer included; an upload "
        "gets this plus its size at min_transfer_rate.",
    )
    min_transfer_rate: float = Field(
        64 * 1024,
        gt=0,
        description="Bytes per second an upload may not fall below: its deadline is "
        "request_timeout plus its size at this rate, so a stalled one is a timeout, not a hang.",
    )
    max_response_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="Largest answer body read, counted after decompression; a longer one is "
        "abandoned ('answer larger than N bytes'), an unknown outcome for a write.",
    )
    max_retry_after: float = Field(
        300.0,
        gt=0,
        description="Longest Retry-After obeyed as it is. A longer one pauses the work: "
        "run --once checkpoints its jobs and exits 75 (EX_TEMPFAIL) saying until when; the "
        "service waits, and shows it (status, /healthz, metrics, one log line per pause).",
    )
    max_list_pages: int = Field(
        10_000,
        ge=1,
        description="Pages one list read may take at most (fewer where Page-Total or "
        "Item-Total justify fewer); a list that goes on is refused as not ending.",
    )
    max_retries: int = Field(
        6,
        ge=0,
        description="Resends of one request after a transient failure (5xx, timeout, lost "
        "connection). A step is tried 4 times in all before it fails, so one step may cost "
        "up to 4 × (1 + max_retries) requests: 28 by default.",
    )
    retry_max_time: float = Field(
        120.0,
        gt=0,
        description="Seconds from a request's first attempt after which it is not resent "
        "(throttle waits not counted); its step then counts one failure.",
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

    # --- Recordings (README "Recordings") ---
    convert: bool = Field(
        False,
        description="Convert audio in formats the API refuses (MP3, M4A…) to FLAC before upload.",
    )
    stereo: Literal["channel", "downmix"] = Field(
        "channel",
        description="channel: a stereo file must name the customer's channel; downmix: mix it.",
    )
    existing: Existing = Field(
        "conflict",
        description="What to do with a customer whose voiceprint is already computed and differs "
        "from the manifest: conflict (report, touch nothing), skip (keep it: outcome kept) or "
        "overwrite (build the new one, then swap it in: outcome replaced). A manifest's or "
        "row's `existing` overrides it.",
    )
    speaker_handles: Literal["derive", "strict"] = Field(
        "derive",
        description="A Voice ID SpeakerId that is not a valid handle: derive one from its hash "
        "(vid-<32 hex>), or strict: refuse that request.",
    )
    retire: Retire = Field(
        "delete",
        description="What becomes of a voiceprint that overwrite or migrate replaced: delete it, "
        "or keep it under the handle <voiceprint>-retired-<id>. A manifest's `retire` overrides "
        "it.",
    )
    voice_margin: float = Field(
        0.15,
        ge=0,
        le=1,
        description="Files whose locally measured voice is short of the model's rule by more "
        "than this fraction are refused before upload; nearer ones are uploaded (1: never refuse).",
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
    processing_timeout: float = Field(
        300.0,
        gt=0,
        description="Seconds an enrollment waits for the API to finish processing an uploaded "
        "file or a compute (read with paced backoff) before it fails.",
    )
    max_actions: int = Field(
        60,
        ge=1,
        description="Actions without progress one enrollment may take before it fails; the "
        "report names the loop.",
    )
    inline_upload_max_bytes: int = Field(
        8 * 1024 * 1024,
        ge=0,
        description="Files up to this size are created with their bytes inline (one request, "
        "base64 streamed); larger ones take create + raw upload. 0: always two steps.",
    )
    # --- Audio in S3 (issue 29, README "Audio in S3") ---
    work_dir_max_bytes: int = Field(
        2 * 1024**3,
        ge=0,
        description="Bytes of S3 downloads in progress at once across the process (the work "
        "folder's disk budget); a download waits for room, an object larger than the whole "
        "budget fails its enrollment. 0: no limit.",
    )
    s3_max_object_bytes: int = Field(
        256 * 1024 * 1024,
        gt=0,
        description="Largest S3 audio object downloaded; a larger one fails its enrollment "
        "from its HEAD, before any download.",
    )
    s3_attempts: int = Field(
        3, ge=1, description="Attempts of one S3 request (botocore's standard retries)."
    )
    s3_timeout: float = Field(
        30.0, gt=0, description="Seconds an S3 connection or read may wait for the server."
    )
    validate_with_get: bool = Field(
        False,
        description="Read the voiceprint back after compute even when compute's answer already "
        "shows it computed with the manifest's model and audios (the guide's literal step).",
    )
    max_job_starts: int = Field(
        3,
        ge=1,
        description="Starts in a row without progress before a job goes to failed/ "
        "(a manifest that crashes the worker).",
    )

    # --- Fleet (issue "one fleet, one budget") ---
    redis_url: Annotated[str | None, UrlSetting("redis", "rediss", "unix")] = Field(
        None,
        description="Redis or Valkey shared by a fleet of workers (redis://, rediss://, unix://): "
        "one rate budget per API account, fleet-wide pauses and locks. Unset: no Redis at all.",
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
    # --- The status page (issue 31: `enroller web`) ---
    web_host: str = Field(
        "127.0.0.1", description="Interface of `enroller web`; off loopback it needs a token."
    )
    web_port: int = Field(8780, ge=1, le=65535, description="Port of `enroller web`.")
    web_token: SecretStr | None = Field(
        None, description="Token `enroller web` asks (bearer or login form); needed off loopback."
    )
    web_token_file: Path | None = Field(None, description="File of the web token; read at start.")
    heartbeat_interval: float = Field(
        5.0, gt=0, description="Seconds between writes of <queue>/.health/<host>-<pid>.json."
    )
    health_max_age: float = Field(
        30.0, gt=0, description="enroller healthcheck fails when the heartbeat is older."
    )

    _key_file_mode: int | None = PrivateAttr(None)

    @field_validator("*", mode="after")
    @classmethod
    def _check_urls(cls, value: Any, info: ValidationInfo) -> Any:
        marker = url_marker(info.field_name)
        if marker is not None and isinstance(value, str):
            check_url(value, marker.schemes)
        return value

    @field_validator("api_password", mode="after")
    @classmethod
    def _password_length(cls, value: SecretStr | None) -> SecretStr | None:
        # Not Field(min_length=…): pydantic's message would tell the secret's length.
        if value is not None and not 8 <= len(value.get_secret_value()) <= 50:
            raise PydanticCustomError("password_length", "must be 8 to 50 characters long")
        return value

    @field_validator("model", mode="after")
    @classmethod
    def _model_form(cls, value: str) -> str:
        # The manifest's own check (worker.manifest.values.model_text) knows more; this one
        # only stops a default that no manifest could ever use, at start instead of per row.
        if not _MODEL_RE.fullmatch(value):
            raise PydanticCustomError(
                "model", 'must be "handle/version" in lowercase letters, digits and hyphens'
            )
        return value

    @model_validator(mode="after")
    def _read_key_file(self) -> Settings:
        if self.api_key is None and self.api_key_file is not None:
            key, mode = read_key_file(self.api_key_file)
            self.api_key = SecretStr(key)
            self._key_file_mode = mode
        if self.web_token is None and self.web_token_file is not None:
            self.web_token = SecretStr(read_key_file(self.web_token_file, "web_token_file")[0])
        return self

    @property
    def key_file_mode(self) -> int | None:
        """Permission bits of the key file the key was read from (None: no file was read)."""
        return self._key_file_mode

    @property
    def resolved_audio_root(self) -> Path:
        return self.audio_root if self.audio_root is not None else self.queue_dir / "audio"


# --- what the rest of the package asks about settings -------------------------------------


def setting_default(name: str) -> Any:
    """The default of setting `name`, the one place it is written (its `Field` above).

    For code below the settings that takes a value (a limit, a retry bound) and may be called
    without one: it falls back to the setting's default instead of a copy of it. Only settings
    with a plain (immutable) default: one made by a factory (`worker_id`) has none to give.
    """
    default = Settings.model_fields[name].default
    if default is PydanticUndefined:
        raise ValueError(f"setting {name} has no plain default")
    return default


def url_marker(name: str) -> UrlSetting | None:
    field = Settings.model_fields.get(name)
    if field is None:
        return None
    return next((m for m in field.metadata if isinstance(m, UrlSetting)), None)


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_url(value: str, schemes: tuple[str, ...]) -> None:
    """Raise a rule (never the value: a URL may hold credentials) unless `value` is usable."""
    want = " or ".join(f"{s}://" for s in schemes)
    rule = f"must be a URL ({want}) with a host"
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises on a port that is not a number
    except ValueError:
        raise PydanticCustomError("url", rule + " and a numeric port") from None
    scheme = parts.scheme.lower()
    if scheme == "unix" and scheme in schemes and parts.path:
        return  # a Unix socket: unix:///run/redis.sock names a path, no host
    if scheme not in schemes or not parts.hostname:
        raise PydanticCustomError("url", rule)
