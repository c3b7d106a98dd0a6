"""A deployment's guest metrics: the query and the series (GET /api/deployments/<id>/metrics)."""
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# The timeframes the API offers (backend/services/metrics.py: TIMEFRAMES holds the same).
MetricsTimeframe = Literal["hour", "day", "week"]


class MetricsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeframe: MetricsTimeframe = Field("hour", description="hour: 70 points a minute apart; day: 30 minutes "
                                        "apart; week: 3 hours apart (as Proxmox keeps them)")


class MetricsPoint(BaseModel):
    time: int = Field(description="Unix time (seconds) the point's interval starts at")
    cpu: float | None = Field(description="CPU use over the interval, in percent of the guest's cores (100: all of "
                              "them busy); null where Proxmox has no figure (before the guest existed)")
    memory: int | None = Field(description="Memory in use, bytes")
    memory_max: int | None = Field(description="Memory the guest has, bytes")
    net_in: float | None = Field(description="Network traffic received, bytes per second")
    net_out: float | None = Field(description="Network traffic sent, bytes per second")
    disk_read: float | None = Field(description="Disk reads, bytes per second")
    disk_write: float | None = Field(description="Disk writes, bytes per second")


class GuestMetrics(BaseModel):
    timeframe: MetricsTimeframe
    points: list[MetricsPoint] = Field(description="Oldest first, each the average over its interval")


class GuestMetricsEnvelope(GuestMetrics):
    success: Literal[True]
