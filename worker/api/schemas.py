"""Pydantic models of the API resources the worker reads and the bodies it sends.

Owns: the wire shapes of `api-contract.md` §3, parsed tolerantly: unknown fields are ignored,
fields the real service may omit are optional, ISO-8601 durations (`PT7.500S`) become float
seconds, and a model given as an object `{handle, version}` becomes the string `handle/version`.
Field names are snake_case in Python and camelCase on the wire. Must never do I/O.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

_DURATION = re.compile(
    r"^(?P<sign>-)?P(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:[.,]\d+)?)S)?)?$"
)


def parse_duration(value: Any) -> Any:
    """ISO-8601 duration (`PT7.500S`, `PT1M2.5S`, `P0D`) → float seconds.

    Numbers pass through, as seconds, so the client is tolerant of a service that sends them.
    Years and months are refused: their length in seconds is not defined.
    """
    if value is None or isinstance(value, int | float):
        return value
    if not isinstance(value, str):
        raise ValueError(f"not an ISO-8601 duration: {value!r}")
    match = _DURATION.match(value.strip())
    if not match or value.strip() in ("P", "PT") or value.strip().endswith("T"):
        raise ValueError(f"not an ISO-8601 duration: {value!r}")
    parts = {
        k: float(v.replace(",", ".")) for k, v in match.groupdict().items() if v and k != "sign"
    }
    seconds = (
        parts.get("days", 0.0) * 86400
        + parts.get("hours", 0.0) * 3600
        + parts.get("minutes", 0.0) * 60
        + parts.get("seconds", 0.0)
    )
    return -seconds if match.group("sign") else seconds


def _model_name(value: Any) -> Any:
    """A model as `{handle, version}` (the vendor guide's form) → `"handle/version"`."""
    if isinstance(value, dict) and "handle" in value and "version" in value:
        return f"{value['handle']}/{value['version']}"
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
ModelName = Annotated[str, BeforeValidator(_model_name)]


class ApiModel(BaseModel):
    """Base of every wire model: camelCase aliases, unknown fields ignored."""

    model_config = ConfigDict(
        extra="ignore", alias_generator=to_camel, populate_by_name=True, frozen=True
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON body to send: camelCase keys, absent optionals left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# --- enums -----------------------------------------------------------------------------------


class AudioState(StrEnum):
    # Spelled `avaitingFile` by the vendor [doc]; `awaitingFile` is accepted in case they fix it.
    AVAITING_FILE = "avaitingFile"
    AVAILABLE = "available"  # decoded and measured: may be added to voiceprints
    NOT_AVAILABLE = "notAvailable"  # the file could not be decoded; final

    @classmethod
    def _missing_(cls, value: object) -> AudioState | None:
        return cls.AVAITING_FILE if value == "awaitingFile" else None


class VoiceprintState(StrEnum):
    NOT_COMPUTABLE = "notComputable"  # fewer than minAudios audios, or not enough voice
    COMPUTABLE = "computable"  # enough audio: compute may be called
    COMPUTED = "computed"  # final: audios can no longer change

    @classmethod
    def _missing_(cls, value: object) -> VoiceprintState | None:
        """A state the contract does not name (`"processing"`) is kept as it is: the engine
        reads it as "not settled yet" (api-contract.md §5), waits within the processing
        timeout, and the report shows the value. Not an error by itself."""
        if not isinstance(value, str) or not 0 < len(value) <= 40:
            return None
        member = str.__new__(cls, value)
        member._name_ = "UNKNOWN"
        member._value_ = value
        return member


# --- resources ---------------------------------------------------------------------------------


class Ref(ApiModel):
    """A resource as embedded in another one: `{handle, alias}`."""

    handle: str
    alias: str | None = None


def _ref(value: Any) -> Any:
    """Embedded references may be a bare handle string; normalise to `{handle}`."""
    return {"handle": value} if isinstance(value, str) else value


RefLike = Annotated[Ref, BeforeValidator(_ref)]


class Owner(ApiModel):
    type: str = "user"  # "user" or "org"
    handle: str
    alias: str | None = None


OwnerLike = Annotated[Owner, BeforeValidator(_ref)]


class User(ApiModel):
    """The caller, `GET /user`."""

    handle: str
    alias: str | None = None
    orgs: list[str] = Field(default_factory=list)

    @field_validator("orgs", mode="before")
    @classmethod
    def _org_handles(cls, value: Any) -> Any:
        # Orgs may arrive as objects `{handle, alias}`: keep the handles.
        if isinstance(value, list):
            return [o["handle"] if isinstance(o, dict) and "handle" in o else o for o in value]
        return value


class TokenResponse(ApiModel):
    """`POST /auth/credentials`. The token is a SecretStr so that no repr or log shows it."""

    token: SecretStr
    issued_at: datetime | None = None
    expires_at: datetime | None = None


class Identity(ApiModel):
    id: str | None = None
    handle: str
    alias: str | None = None
    audios: int = 0
    voiceprints: int = 0
    verifications: int = 0
    created_at: datetime | None = None


class Audio(ApiModel):
    id: str | None = None
    handle: str
    alias: str | None = None
    state: AudioState
    duration: Duration | None = None
    voice_duration: Duration | None = None  # only in older reference versions [doc]
    sample_rate: int | None = None
    identity: RefLike | None = None
    voiceprints: int = 0
    verifications: int = 0
    created_at: datetime | None = None
    uploaded_at: datetime | None = None


class Credits(ApiModel):
    """`GET /owners/{owner}/credits`: ours, not the vendor's (contract §5: it documents none).

    `left` is None when the owner's credits are unlimited."""

    owner: str
    left: int | None = None
    used: int | None = None


class Model(ApiModel):
    """A voiceprint model, `GET /models` (emulator only; the worker also has a local table)."""

    handle: str
    version: str
    deprecated: bool = False
    requirements: dict[str, Any] = Field(default_factory=dict)

    @property
    def name(self) -> str:
        """The form the API takes and returns: `handle/version`."""
        return f"{self.handle}/{self.version}"


class Voiceprint(ApiModel):
    id: str | None = None
    handle: str
    alias: str | None = None
    state: VoiceprintState
    model: ModelName
    identity: RefLike
    total_duration: Duration | None = None
    total_voice_duration: Duration | None = None
    min_audios: int | None = None
    audios: int = 0
    verifications: int = 0
    created_at: datetime | None = None
    computed_at: datetime | None = None


class RecordVoiceprint(ApiModel):
    handle: str
    alias: str | None = None
    state: str | None = None  # a VoiceprintState value; kept as text: shapes are ours
    identity: RefLike | None = None


class RecordSpace(ApiModel):
    handle: str
    alias: str | None = None
    owner: OwnerLike | None = None


class UsageRecord(ApiModel):
    """One billed compute, `GET …/records/voiceprint`."""

    id: str | None = None
    handle: str | None = None
    actor: RefLike | None = None
    model: ModelName | None = None
    voiceprint: RecordVoiceprint
    space: RecordSpace | None = None
    owner: OwnerLike | None = None
    computed_at: datetime | None = None


# --- request bodies --------------------------------------------------------------------------


class Credentials(ApiModel):
    handle: str = Field(min_length=1, max_length=50)
    password: SecretStr = Field(min_length=8, max_length=50)

    def to_wire(self) -> dict[str, Any]:
        return {"handle": self.handle, "password": self.password.get_secret_value()}


class IdentityCreate(ApiModel):
    handle: str
    alias: str | None = None


class AudioCreate(ApiModel):
    """Create without `file`: the audio waits in `avaitingFile` for the streamed upload."""

    alias: str | None = None
    identity: str | None = None


class VoiceprintCreate(ApiModel):
    identity: str
    model: str  # the reference's form, "handle/version"
    min_audios: int = Field(1, ge=1, le=20)
    handle: str | None = None
    alias: str | None = None


class VoiceprintPatch(ApiModel):
    """A voiceprint's rename (`PATCH`, [inferred]): only the fields given are sent, so the
    other stays as it is. A patch of nothing would be a request that asks for nothing."""

    handle: str | None = None
    alias: str | None = None

    @model_validator(mode="after")
    def _something(self) -> VoiceprintPatch:
        if self.handle is None and self.alias is None:
            raise ValueError("a voiceprint patch needs a handle, an alias or both")
        return self


# --- pagination ------------------------------------------------------------------------------

T = TypeVar("T", bound=BaseModel)


class Page(BaseModel, Generic[T]):
    """One page of a list, with the counts of the `Page-*` / `Item-Total` headers."""

    items: list[T]
    page_current: int = 1
    page_total: int | None = None
    page_size: int | None = None
    item_total: int | None = None
    fingerprint: str | None = None  # a hash of the page's body: a repeated page is a loop

    @property
    def is_last(self) -> bool:
        if self.page_total is not None:
            return self.page_current >= self.page_total
        # No headers: a short page is the last one.
        return self.page_size is None or len(self.items) < self.page_size
