"""Every setting as one Markdown table, generated from the `Settings` model.

Owns: the README's configuration table (tests/unit/test_config_table.py keeps README.md equal
to it) and `enroller config --markdown`. It reads the model's fields and never validates,
loads or changes a setting (settings.py does).
"""

from __future__ import annotations

from pathlib import Path

from worker.config.described import secret_settings
from worker.config.settings import Settings, env_name, flag_name

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
    secrets = secret_settings()
    for name, field in Settings.model_fields.items():
        flag = f"`{flag_name(name)}`"
        if field.annotation is bool:
            flag = f"`{flag_name(name)} / --no-{name.replace('_', '-')}`"
        elif name in secrets:
            file_flag = flag_name(name + "_file")
            via = (
                f", .env or `{file_flag}`"
                if f"{name}_file" in Settings.model_fields
                else " or .env"
            )
            flag = f"refused (secret): env{via}"
        default = _DEFAULT_SHOWN.get(name) or _cell(field.default)
        meaning = (field.description or "").replace("|", "\\|").replace("<", "&lt;")
        rows.append(f"| `{name}` | `{env_name(name)}` | {flag} | {default} | {meaning} |")
    return "\n".join(rows) + "\n"
