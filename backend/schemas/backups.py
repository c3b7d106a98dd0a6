"""Backups of a deployment's guest (/api/deployments/<id>/backups) and restoring one into a new deployment."""
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.schemas.common import Name, StrictModel, UuidText
from backend.schemas.deployments import DeploymentOut


class BackupOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UuidText
    volid: str | None = Field(description="The archive on the storage, e.g. backup:backup/vzdump-lxc-101-....tar.zst")
    size: int | None = Field(description="Bytes")
    created_at: datetime
    finished_at: datetime | None
    state: Literal["running", "ok", "failed"]
    error: str | None = Field(description="Proxmox's words, when it failed")
    trigger: Literal["manual", "schedule", "found"] = Field(description="found: on the storage before the platform "
                                                            "recorded it (its notes name this deployment)")
    storage: str
    release_version: int | None = Field(description="The release that served when it was made")


class BackupEnvelope(BaseModel):
    success: Literal[True]
    backup: BackupOut


class BackupList(BaseModel):
    success: Literal[True]
    backups: list[BackupOut] = Field(description="Newest first")
    storage_checked: bool = Field(description="Whether the storage's content was read now (false: Proxmox did not "
                                  "answer, the list is the platform's own record)")


class RestoreBackupIn(StrictModel):
    name: Name = Field(description="The new deployment's name", examples=["shop-restored"])
    node: str | None = Field(None, max_length=64, pattern=r"^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$",
                             description="The node to restore on (default: the online node with the most room)")


class DeploymentCreated(BaseModel):
    success: Literal[True]
    deployment: DeploymentOut
