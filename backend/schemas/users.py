"""Users, their quotas and their API tokens (/api/me, /api/tokens, /api/users)."""
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.schemas.common import StrictModel, UuidText

Username = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]{1,62}[a-z0-9]$", description="3-64 of a-z 0-9 _ . -")]
TokenName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9 _.:@-]+$")]


class QuotasIn(StrictModel):
    """Per-user limits; null: the configured default."""

    deployments: int | None = Field(None, ge=0, le=10000)
    cores: int | None = Field(None, ge=0, le=100000)
    memory: int | None = Field(None, ge=0, le=100000000, description="MB")
    disk: int | None = Field(None, ge=0, le=10000000, description="GB")


class QuotaValues(BaseModel):
    deployments: int | None
    cores: int | None
    memory: int | None
    disk: int | None


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UuidText
    username: str
    role: Literal["admin", "member"]
    created_at: datetime
    disabled_at: datetime | None
    quota_overrides: QuotaValues
    allow_private_targets: bool


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UuidText
    name: str
    prefix: str = Field(description="The token's first characters, to recognise it")
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreate(StrictModel):
    name: TokenName
    expires_in_days: int | None = Field(None, ge=1, le=3650, description="Omit for a token that does not expire")


class TokenCreated(BaseModel):
    success: Literal[True]
    token: str = Field(description="The token itself: shown this once, stored only as a hash")
    token_info: TokenOut


class TokenEnvelope(BaseModel):
    success: Literal[True]
    token_info: TokenOut


class TokenList(BaseModel):
    success: Literal[True]
    tokens: list[TokenOut]


class UserCreate(StrictModel):
    username: Username
    role: Literal["admin", "member"] = "member"
    quotas: QuotasIn | None = None
    allow_private_targets: bool = False


class UserUpdate(StrictModel):
    role: Literal["admin", "member"] | None = None
    quotas: QuotasIn | None = None
    allow_private_targets: bool | None = None
    disabled: bool | None = Field(None, description="true revokes every token of the user")


class UserEnvelope(BaseModel):
    success: Literal[True]
    user: UserOut


class UserCreated(UserEnvelope):
    token: str = Field(description="The user's first API token: shown this once")
    token_info: TokenOut


class UserList(BaseModel):
    success: Literal[True]
    users: list[UserOut]


# -- logging in -----------------------------------------------------------------------------------------


class LoginRequest(StrictModel):
    """A username and password, exchanged for a new named API token."""

    # Any text: a name that cannot exist is refused like every other failure (401), not described.
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024, json_schema_extra={"format": "password", "writeOnly": True})
    token_name: TokenName = Field(description="A name to recognise the new token by (GET /api/tokens)")
    expires_in_days: int | None = Field(None, ge=1, le=3650, description="Omit for a token that does not expire")


class PasswordChange(StrictModel):
    """The caller's own password: the current one (when they have one) and the new one (12 to 1024 characters)."""

    current_password: str | None = Field(None, max_length=1024,
                                         json_schema_extra={"format": "password", "writeOnly": True})
    new_password: str = Field(min_length=1, max_length=1024, json_schema_extra={"format": "password",
                                                                                  "writeOnly": True})


class LoginOut(TokenCreated):
    user: UserOut


class MeOut(BaseModel):
    success: Literal[True]
    user: UserOut
    quotas: QuotaValues | None = Field(description="The limits that apply; null for admins (no quota)")
    usage: QuotaValues
