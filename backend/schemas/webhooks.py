"""GitHub push-to-deploy and outbound notifications of a deployment."""
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backend.schemas.common import MAX_ID, StrictModel, UuidText
from backend.status import DeploymentStatus


class WebhookOut(BaseModel):
    success: Literal[True]
    enabled: bool
    url: str = Field(description="The payload URL to give GitHub (content type application/json)")
    secret: str | None = Field(None, description="Only when just enabled: shown this once")
    events: list[str]


class NotificationTargetIn(StrictModel):
    url: str = Field(max_length=2048, description="https URL; loopback and private addresses only if an admin "
                     "allowed them for the owner")


class NotificationTargetOut(BaseModel):
    success: Literal[True]
    url: str | None
    secret: str | None = Field(None, description="Only when just set: the HMAC key; shown this once")
    signature_header: str


class StatusChange(BaseModel):
    id: UuidText
    name: str
    status: DeploymentStatus
    previous_status: DeploymentStatus
    url: str | None
    error_message: str | None


class StatusNotification(BaseModel):
    """What is POSTed to a deployment's notification URL when its status changes (the outbox row's payload)."""

    event: Literal["deployment.status"]
    deployment: StatusChange
    message: str | None
    time: datetime


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    event: str
    url: str
    payload: dict
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None

    @field_validator("next_attempt_at")
    @classmethod
    def _only_while_pending(cls, value, info):
        # A delivered or abandoned row keeps its last schedule, which no longer means anything.
        return value if info.data.get("state") == "pending" else None


class DeliveryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    before: int | None = Field(None, ge=1, le=MAX_ID)
    limit: int = Field(50, ge=1, le=500)


class DeliveryPage(BaseModel):
    success: Literal[True]
    deliveries: list[DeliveryOut]
    next_before: int | None


class WebhookReceipt(BaseModel):
    success: Literal[True]
    status: str = Field(description="pong, duplicate, ignored or deploying")
    message: str
    release: int | None = None
