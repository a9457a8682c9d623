"""The emulated service's world and every rule that changes it.

Owns: users, orgs, sessions, spaces, identities, audios, voiceprints, usage records and
verifications; access control (403), existence (404), collisions (409), model requirements
(422), credits (429), voiceprint state transitions, wire rendering and the JSON snapshot used for
persistence. Synchronous and free of I/O: the aiohttp layer (`app.py`, `routes/`) calls one
method per request and never mutates anything itself, so every rule is testable without a
socket. Audio decoding happens before a method is called (see `audio.py`); the result is
passed in. The records themselves are in `records.py`; the delays of asynchronous processing
(`--file-delay-ms`, `--compute-delay-ms`) are scheduled by `processing.py` and applied here,
lazily, whenever a request reads the world (`settle`).

One module per resource: `world.py` (users, sessions, spaces, access, snapshot), then
`identities.py`, `audios.py`, `voiceprints.py` (with verifications), `lifecycle.py` (rename
and delete), `records.py` (usage records) and `credits.py`. `State` is all of them.
"""

from __future__ import annotations

from emulator.state.lifecycle import VoiceprintLifecycle
from emulator.state.records import Records


class State(VoiceprintLifecycle, Records):
    """The whole emulated service. One instance per emulator; methods are its operations.

    `clock` gives the current UTC time (injected so tests can move time); `credits` is the
    balance every owner starts with (None = unlimited), overridden per owner by the world config.
    `file_delay_ms` / `compute_delay_ms` turn on asynchronous processing (see `processing.py`).
    """
