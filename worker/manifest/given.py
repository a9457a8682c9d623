"""An enrollment as the operator wrote it, JSON-ready, even when it cannot run.

Owns: `given_values`, the one place that turns a candidate's values and audios (JSON or CSV,
before validation; `worker.manifest.build` calls it) into the enrollment format of a JSON
manifest, with the defaults the worker applied written out. A rejected enrollment keeps it
(`RejectedEnrollment.given`) so that its report row, its failures CSV row and its retry
manifest entry show every value the operator gave: a model typo or a handle like `Cust 7` is
fixed in the retry file and dropped back, instead of being lost with only a reason left. Keys
the worker does not know yet are carried as they are (a field a format adds flows through
without a list here to update).

Pure: values in, values out. Every value comes out as something `json.dumps` writes as valid
JSON that reads back the same: NaN, an integer of thousands of digits or a nested structure
becomes its text as `show` prints it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from worker.base.text import safe_text
from worker.manifest.models import ManifestDefaults
from worker.manifest.values import DEFAULT_VOICEPRINT, bool_value, min_audios, show

# The order of a JSON enrollment's keys as `worker.manifest.retry` writes them; others follow.
_ORDER = ("owner", "space", "identity", "voiceprint", "model", "minAudios", "alias")
_INT_MAX = 2**63  # beyond, an integer is written as its text


def plain(value: Any, depth: int = 0) -> Any:
    """`value` as JSON that reads back the same; anything else as the text `show` gives.

    Text is written safe (`safe_text`): a lone surrogate, which no journal or report can hold,
    becomes its `\\udXXX` escape, as everywhere user text is echoed.
    """
    if isinstance(value, str):
        return safe_text(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if -_INT_MAX <= value < _INT_MAX:
            return value
        # Not `show`: Python refuses to print an integer of more than 4300 digits.
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    if isinstance(value, float):
        return value if math.isfinite(value) else show(value)
    if depth < 1 and isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {safe_text(k): plain(v, depth + 1) for k, v in value.items()}
    if depth < 1 and isinstance(value, list):
        return [plain(v, depth + 1) for v in value]
    return show(value)


def _audio(raw_value: Any, channel: Any) -> Any:
    """One audio as written: a path, or {"path", "channel"} when a channel was named."""
    raw = plain(raw_value)
    if channel is None or channel == "" or not isinstance(raw, str):
        return raw
    if isinstance(channel, str):
        channel = channel.strip()
    if isinstance(channel, str) and channel.isdigit():
        channel = int(channel)
    return {"path": raw, "channel": plain(channel)}


def given_values(
    values: Mapping[str, Any], audios: Sequence[tuple[Any, Any]], defaults: ManifestDefaults
) -> dict[str, Any]:
    """The enrollment as written, in the JSON manifest format, the worker's defaults filled in.

    Values that validate are written in their checked form (`minAudios` "2" from a CSV cell
    becomes 2), others exactly as given, so the operator sees and fixes their own value.
    `audios`: (as written, the CSV `channel` cell or None) for each audio listed.
    """
    out: dict[str, Any] = {}
    fallback: dict[str, Any] = {
        "owner": defaults.owner,
        "space": defaults.space,
        "voiceprint": DEFAULT_VOICEPRINT,
        "model": defaults.model,
        "minAudios": 1,
    }
    for key in _ORDER:
        value = values.get(key, fallback.get(key))
        if value is not None:
            out[key] = plain(value)
    if "minAudios" in values and isinstance(n := min_audios(values["minAudios"]), int):
        out["minAudios"] = n
    create = values.get("createIdentity", True)
    checked = bool_value(create)
    out["createIdentity"] = checked if checked is not None else plain(create)
    for key, default in (("existing", defaults.existing), ("retire", defaults.retire)):
        out[key] = plain(values.get(key, default))
    for key in sorted(k for k in values if k not in out):
        out[key] = plain(values[key])
    out["audios"] = [_audio(raw, channel) for raw, channel in audios]
    return out
