"""The audit log (/api/audit)."""
from datetime import datetime
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from backend.schemas.common import MAX_ID, UuidText


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str | None = Field(None, max_length=64, description="A user id or username")
    deployment: str | None = Field(None, max_length=64, description="A deployment id")
    action: str | None = Field(None, max_length=64, pattern=r"^[a-z_.]+$",
                               description="An action or its prefix (deployment., token.)")
    since: datetime | None = None
    until: datetime | None = None
    before: int | None = Field(None, ge=1, le=MAX_ID, description="The next_before of the previous page")
    limit: int = Field(100, ge=1, le=1000)


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    time: datetime = Field(validation_alias=AliasChoices("time", "created_at"))
    user_id: UuidText | None
    username: str | None
    action: str
    deployment_id: UuidText | None
    target: str | None
    ip_address: str | None
    request_id: str | None
    details: dict


class AuditPage(BaseModel):
    success: Literal[True]
    entries: list[AuditOut]
    next_before: int | None
