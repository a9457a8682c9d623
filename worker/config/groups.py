"""Which settings each concern reads, so that a subcommand's `--help` lists only its own.

Owns: `SETTING_GROUPS` (a concern's settings, by field name) and `settings_of` (the union of some
groups, in the model's order). A command names the groups it uses (`worker/cli.py`'s command
table); a new setting joins a group here and shows in every command that uses that group, and a
new subcommand names its groups. `ALL` stands for every setting (`run`, `config`).
"""

from __future__ import annotations

from collections.abc import Iterable

from worker.config.settings import Settings

ALL = "all"

SETTING_GROUPS: dict[str, tuple[str, ...]] = {
    # Reading manifests and their audio: validate, plan, submit, check.
    "manifest": (
        "queue_dir",
        "audio_root",
        "owner",
        "space",
        "model",
        "max_manifest_bytes",
        "convert",
        "stereo",
        "voice_margin",
        "inline_upload_max_bytes",
        "existing",
        "retire",
    ),
    # What a run costs in time.
    "rate": ("rate_limit",),
    # Talking to the API: check.
    "api": (
        "api_url",
        "api_key",
        "api_key_file",
        "api_handle",
        "api_password",
        "request_timeout",
        "max_retries",
        "retry_max_time",
        "rate_limit",
        "burst",
    ),
    # Reading the queue folder: status, submit.
    "queue": ("queue_dir", "lease_ttl"),
    # Heartbeats: healthcheck, status.
    "health": ("queue_dir", "heartbeat_interval", "health_max_age", "redis_url"),
}


def settings_of(groups: Iterable[str]) -> list[str]:
    """The settings of `groups`, in the model's order (`ALL`: every setting).

    Raises KeyError for a group that does not exist: a typo in the command table must fail
    at once, not hide a command's flags.
    """
    wanted = set(groups)
    if ALL in wanted:
        return list(Settings.model_fields)
    names: set[str] = set()
    for group in wanted:
        names.update(SETTING_GROUPS[group])
    return [name for name in Settings.model_fields if name in names]
