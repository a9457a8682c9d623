"""The emulator's knobs and the world it starts with.

Owns: `EmulatorOptions` (every flag of `enroller emulator`, each also `EMULATOR_<NAME>` in the
environment) and `WorldConfig` (users, orgs, spaces, keys, credits), with the seeded default world
of issue 2. Pure data and validation: it must never start a server or touch state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # contract §2: 413 above 50 MiB


class EmulatorOptions(BaseSettings):
    """How one emulator process behaves. Field descriptions feed `--help`."""

    model_config = SettingsConfigDict(env_prefix="EMULATOR_", extra="forbid")

    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int = Field(8765, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    rate_limit: float = Field(
        0.0, ge=0, description="Requests per second per token; 0 means unlimited."
    )
    burst: int = Field(10, ge=1, description="Requests a token may send at once when idle.")
    credits: int | None = Field(
        None, ge=0, description="Credits per owner (one compute costs 1); unset = unlimited."
    )
    latency_ms: float = Field(0.0, ge=0, description="Delay added to every API response.")
    fault_rate: float = Field(
        0.0, ge=0, le=1, description="Fraction of API requests answered 500/503 or dropped."
    )
    seed: int | None = Field(None, description="Seed for faults and generated handles.")
    state_file: Path | None = Field(
        None, description="JSON file the state is kept in (atomic writes); reloaded at start."
    )
    token_ttl: float = Field(3600.0, gt=0, description="Session-token lifetime in seconds.")
    config: Path | None = Field(
        None, description="JSON file with a world (users, orgs, spaces) replacing the seed."
    )
    max_upload_bytes: int = Field(
        MAX_UPLOAD_BYTES, ge=1, description="Largest audio file accepted (413 above)."
    )
    # Where the real service may differ (api-contract.md §5): off by default.
    file_delay_ms: float = Field(
        0.0,
        ge=0,
        description="Asynchronous files: a received file reads avaitingFile this long before "
        "available/notAvailable; adding it meanwhile is a 409.",
    )
    compute_delay_ms: float = Field(
        0.0,
        ge=0,
        description="Asynchronous compute: compute answers 200 still computable, computed "
        "(with its usage record) this long after; computing again meanwhile is a 409.",
    )
    retry_after_format: Literal["seconds", "http-date"] = Field(
        "seconds", description="How a rate-limit 429 writes Retry-After (RFC 9110 allows both)."
    )
    # The two [inferred] routes (api-contract.md §3), each removable so that a client's
    # fallback for a service without it can be tested: the route then answers 405.
    no_voiceprint_rename: bool = Field(
        False, description="PATCH …/voiceprints/{identity}/{voiceprint} answers 405."
    )
    no_voiceprint_delete: bool = Field(
        False, description="DELETE …/voiceprints/{identity}/{voiceprint} answers 405."
    )


class UserConfig(BaseModel):
    """A user of the emulated service. `api_keys` are long-lived Bearer tokens."""

    model_config = ConfigDict(extra="forbid")

    handle: str
    alias: str | None = None
    password: str | None = None
    api_keys: list[str] = Field(default_factory=list)
    orgs: list[str] = Field(default_factory=list)


class OrgConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    handle: str
    alias: str | None = None


class SpaceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owner: str
    handle: str
    alias: str | None = None


class WorldConfig(BaseModel):
    """Everything the vendor sets up outside the API: users, orgs, spaces, credit balances.

    `credits` maps an owner handle to its balance and wins over `--credits` for that owner.
    """

    model_config = ConfigDict(extra="forbid")

    users: list[UserConfig]
    orgs: list[OrgConfig] = Field(default_factory=list)
    spaces: list[SpaceConfig] = Field(default_factory=list)
    credits: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> WorldConfig:
        users = {u.handle for u in self.users}
        orgs = {o.handle for o in self.orgs}
        if users & orgs:
            raise ValueError(f"handles used by both a user and an org: {sorted(users & orgs)}")
        for user in self.users:
            missing = set(user.orgs) - orgs
            if missing:
                raise ValueError(f"user {user.handle} is in unknown orgs {sorted(missing)}")
        for space in self.spaces:
            if space.owner not in users | orgs:
                raise ValueError(f"space {space.owner}/{space.handle} has an unknown owner")
        keys = [k for u in self.users for k in u.api_keys]
        if len(keys) != len(set(keys)):
            raise ValueError("an API key is given to more than one user")
        return self


def default_world() -> WorldConfig:
    """The seeded world of issue 2, which tests, the demo and the README rely on."""
    return WorldConfig(
        users=[
            UserConfig(
                handle="demo",
                alias="Demo User",
                password="demo-password",  # noqa: S106 - a published demo credential
                api_keys=["demo-key"],
                orgs=["acme"],
            ),
            UserConfig(handle="other", alias="Other User", api_keys=["other-key"]),
        ],
        orgs=[OrgConfig(handle="acme", alias="ACME Corp")],
        spaces=[
            SpaceConfig(owner="demo", handle="main", alias="Demo main space"),
            SpaceConfig(owner="acme", handle="onboarding", alias="ACME onboarding"),
            SpaceConfig(owner="other", handle="private", alias="Other's private space"),
        ],
    )


def load_world(path: Path | None) -> WorldConfig:
    """The world from a JSON config file, or the seeded default when no file is given."""
    if path is None:
        return default_world()
    return WorldConfig.model_validate(json.loads(path.read_text(encoding="utf-8")))
