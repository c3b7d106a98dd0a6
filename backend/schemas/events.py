"""A deployment's history: its events, and the readable log's query."""
from datetime import datetime
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from backend.schemas.common import MAX_ID


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    time: datetime = Field(validation_alias=AliasChoices("time", "created_at"))
    kind: Literal["status", "step", "task", "error", "action"]
    from_status: str | None
    to_status: str | None
    message: str
    upid: str | None = Field(description="The Proxmox task this step started")


class EventQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after: int | None = Field(None, ge=0, le=MAX_ID,
                               description="Only events with a larger id (the next_after of a page)")
    limit: int = Field(200, ge=1, le=1000)


class EventList(BaseModel):
    success: Literal[True]
    events: list[EventOut]
    next_after: int | None = Field(description="Pass as after= for the next page; null on the last one")


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tasks: bool = Field(True, description="Include the Proxmox task logs")
