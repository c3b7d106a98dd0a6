"""A deployment's names behind the edge router, and its access log (/api/deployments/<id>/domains, /logs/access)."""
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.schemas.common import StrictModel


class DomainIn(StrictModel):
    hostname: str = Field(max_length=253, examples=["www.example.com"],
                          description="A fully qualified domain name pointing (DNS) at the edge router, e.g. "
                          "www.example.com; any case, a trailing dot is dropped")


class DomainOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    hostname: str
    created_at: datetime


class DomainEnvelope(BaseModel):
    success: Literal[True]
    domain: DomainOut
    routed: bool = Field(description="Whether the router took the change now; false: it was unreachable, and the "
                         "route is applied when it is back")


class DomainList(BaseModel):
    success: Literal[True]
    default: str = Field(description="The name the deployment has under the platform's domain (APPS_DOMAIN)")
    url: str | None = Field(description="Its https address, once a release serves")
    domains: list[DomainOut] = Field(description="Its custom domains, by name")


class AccessLogQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lines: int = Field(200, ge=1, le=5000, description="How many of the most recent requests")


class AccessEntry(BaseModel):
    ts: str = Field(description="When the request came, ISO 8601")
    remote_ip: str | None = None
    method: str | None = None
    host: str | None = None
    uri: str | None = None
    proto: str | None = None
    status: int | None = None
    duration_ms: float | None = None
    size: int | None = None
    user_agent: str | None = None


class AccessLog(BaseModel):
    success: Literal[True]
    entries: list[AccessEntry] = Field(description="Oldest first; request headers other than the user agent are "
                                       "never kept")
