"""The audit log (/api/audit)."""
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field

from backend.schemas.common import MAX_ID, UuidText


def _utc_unless_told(value):
    """A time without an offset is UTC (the log's own zone); one with an offset is kept."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


Instant = Annotated[datetime, AfterValidator(_utc_unless_told),
                    Field(description="ISO 8601; without an offset (Z, +02:00) it is read as UTC")]


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str | None = Field(None, max_length=64, description="A user id or username")
    deployment: str | None = Field(None, max_length=64, description="A deployment id")
    action: str | None = Field(None, max_length=64, pattern=r"^[a-z_.]+$",
                               description="An action or its prefix (deployment., token.)")
    since: Instant | None = None
    until: Instant | None = None
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
