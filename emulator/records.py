"""The emulated service's records: plain dataclasses, the snapshot, and the error a rule raises.

Owns: the shape of everything the emulator stores (pydantic's TypeAdapter turns the whole
`Snapshot` into JSON and back), and `ApiError`, which a rule raises to refuse a request. No
rules here: `state.py` decides, `processing.py` delays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

SNAPSHOT_VERSION = 1

# --- errors ----------------------------------------------------------------------------------


class ApiError(Exception):
    """A rule refused the request; `status` and `message` become the HTTP answer."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def conflict(message: str) -> ApiError:
    return ApiError(409, message)


# --- the world's records -----------------------------------------------------------------------
# Plain dataclasses: pydantic's TypeAdapter turns the whole `Snapshot` into JSON and back.


@dataclass
class User:
    handle: str
    alias: str | None
    password: str | None
    api_keys: list[str]
    orgs: list[str]


@dataclass
class Org:
    handle: str
    alias: str | None


@dataclass
class Session:
    token: str
    user: str
    issued_at: datetime
    expires_at: datetime


@dataclass
class Identity:
    id: str
    handle: str
    alias: str | None
    created_at: datetime
    audios: int = 0  # audios linked to this identity
    voiceprints: int = 0
    verifications: int = 0


@dataclass
class Audio:
    id: str
    handle: str
    alias: str | None
    created_at: datetime
    state: str = "avaitingFile"  # the vendor's spelling [doc]
    identity: str | None = None
    duration: float | None = None
    voice_duration: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    format: str | None = None
    size: int | None = None
    uploaded_at: datetime | None = None
    voiceprints: int = 0
    verifications: int = 0
    # Asynchronous processing (--file-delay-ms): the file is in, the state still reads
    # avaitingFile until `ready_at`, when it becomes `ready_state`.
    ready_state: str | None = None
    ready_at: datetime | None = None


@dataclass
class Voiceprint:
    id: str
    handle: str
    alias: str | None
    identity: str
    model: str
    min_audios: int
    created_at: datetime
    audios: list[str] = field(default_factory=list)
    state: str = "notComputable"
    computed_at: datetime | None = None
    verifications: int = 0
    # Asynchronous processing (--compute-delay-ms): compute was accepted (and charged); the
    # voiceprint still reads computable until `computing_until`, then computed with its record.
    computing_until: datetime | None = None
    computing_actor: dict[str, Any] | None = None


@dataclass
class Verification:
    id: str
    handle: str
    alias: str | None
    state: str
    model: str
    audio: str
    identity: str
    voiceprint: str
    score: float | None
    created_at: datetime
    performed_at: datetime | None


@dataclass
class Space:
    id: str
    owner: str
    handle: str
    alias: str | None
    created_at: datetime
    identities: dict[str, Identity] = field(default_factory=dict)
    audios: dict[str, Audio] = field(default_factory=dict)
    voiceprints: dict[str, Voiceprint] = field(default_factory=dict)  # "identity/handle"
    verifications: dict[str, Verification] = field(default_factory=dict)


@dataclass
class Record:
    id: str
    handle: str
    actor: dict[str, Any]
    model: str
    voiceprint: dict[str, Any]
    space: dict[str, Any]
    owner: dict[str, Any]
    computed_at: datetime


@dataclass
class Snapshot:
    """Everything that survives a restart (audio bytes do not; their measurements do)."""

    version: int
    users: dict[str, User]
    orgs: dict[str, Org]
    sessions: dict[str, Session]
    spaces: dict[str, Space]  # "owner/handle"
    records: list[Record]
    credits_used: dict[str, int]


SNAPSHOT_ADAPTER = TypeAdapter(Snapshot)
