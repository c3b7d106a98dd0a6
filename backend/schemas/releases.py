"""Releases, environment variables and build logs of a deployment."""
from datetime import datetime
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from backend.schemas.common import MAX_ID, MAX_VERSION, Branch, Commit, StrictModel
from backend.schemas.deployments import DeploymentOut


class RedeployIn(StrictModel):
    branch: Branch | None = Field(None, description="Deploy this branch (and make it the deployment's)")
    commit: Commit | None = Field(None, description="Deploy this commit of the branch instead of its head")


class ReleaseOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    status: Literal["queued", "building", "live", "superseded", "failed", "cancelled"]
    reason: Literal["create", "redeploy", "rollback", "env", "retry", "restore"]
    branch: str
    requested_commit: str | None
    commit_sha: str | None = Field(description="The commit actually deployed")
    rollback_of: int | None
    snapshot: str | None = Field(description="The Proxmox snapshot of the guest as this release left it, taken before "
                                 "the next release (POST .../releases/<version>/restore goes back to it)")
    config: dict
    error_message: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ReleaseEnvelope(BaseModel):
    success: Literal[True]
    release: ReleaseOut
    deployment: DeploymentOut


class ReleaseList(BaseModel):
    success: Literal[True]
    releases: list[ReleaseOut]


class EnvOut(BaseModel):
    success: Literal[True]
    env: dict[str, str] = Field(description="Keys with masked values")
    release: ReleaseOut | None = Field(None, description="The release the change started (running deployments)")


class LogLineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    release: int = Field(validation_alias=AliasChoices("release", "release_version"))
    time: datetime = Field(validation_alias=AliasChoices("time", "created_at"))
    stream: Literal["out", "step", "error", "app"]
    line: str


class BuildLogQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    release: int | None = Field(None, ge=1, le=MAX_VERSION, description="One release's lines (default: every release)")
    after: int | None = Field(None, ge=0, le=MAX_ID, description="Only lines with a larger id (next_after of a page)")
    limit: int = Field(500, ge=1, le=5000)


class BuildLogPage(BaseModel):
    success: Literal[True]
    lines: list[LogLineOut]
    next_after: int | None = Field(description="Pass as after= for the next page; null on the last one")


class StreamQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    release: int | None = Field(None, ge=1, le=MAX_VERSION, description="Default: the newest release")
    after: int | None = Field(None, ge=0, le=MAX_ID, description="Like the Last-Event-ID header")


class RuntimeLogQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lines: int = Field(200, ge=1, le=5000)
    process: str = Field("web", pattern=r"^[a-z0-9][a-z0-9_-]{0,29}$",
                         description="web, or another process of the live release (a Procfile line: worker, ...)")


class ProcessOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str = Field(description="web, or the name of a Procfile line")
    command: str | None = Field(description="What it runs")
    service: str = Field(description="Its systemd unit on the guest")
    state: Literal["running", "starting", "stopped", "failed", "unknown"] = Field(
        description="starting: waiting to be restarted after a crash")
    restarts: int | None = Field(description="Automatic restarts after a crash since it was last started")
    detail: str | None


class ProcessList(BaseModel):
    success: Literal[True]
    release: int = Field(description="The live release, whose processes these are")
    processes: list[ProcessOut]
