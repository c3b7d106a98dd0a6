"""Stats, the framework catalogue, health and the cluster's nodes."""
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class StatsOut(BaseModel):
    success: Literal[True]
    total: int = Field(description="Deployments that are not deleted")
    by_status: dict[str, int]
    by_type: dict[str, int]
    success_rate: float | None = Field(
        description="(running + stopped) / (running + stopped + failed), null when none finished"
    )


class FrameworkOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    key: str
    display_name: str
    language: str
    default_port: int
    build_command: str | None
    start_command: str
    description: str


class FrameworkList(BaseModel):
    success: Literal[True]
    frameworks: list[FrameworkOut]


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unreachable"]
    proxmox: Literal["ok", "unreachable", "not_configured"] = Field(
        description="Whether a cluster is configured and answers (checked at most every 15 s); "
                    "it does not change the status code, which is the API's own health")


class NodeOut(BaseModel):
    node: str
    status: str
    cpu: float
    maxcpu: int
    free_memory_mb: int
    total_memory_mb: int
    free_disk_gb: int | None


class NodeList(BaseModel):
    success: Literal[True]
    nodes: list[NodeOut]
