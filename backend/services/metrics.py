"""A deployment's guest metrics: the statistics Proxmox keeps of its guest (rrddata), in the API's units.

A user's request, so the platform's quick client asks (a short timeout, no retries), as for the live status
(cluster.py); a Proxmox that does not answer is a 503 proxmox_unavailable, as for GET /api/nodes.
"""
import math

from backend.errors import Conflict, DomainError, ValidationFailed
from backend.models import DeploymentStatus
from backend.proxmox.errors import ProxmoxError
from backend.services.cluster import NOT_CONFIGURED, public_message

# The timeframes offered (backend/schemas/metrics.py: MetricsTimeframe holds the same); Proxmox has month and
# year too, at 12 hours and 7 days a point.
TIMEFRAMES = ("hour", "day", "week")
# Our name: (Proxmox's, how it becomes ours).
FIGURES = {
    "cpu": ("cpu", lambda fraction: round(fraction * 100, 3)),  # a fraction of the guest's cores -> percent
    "memory": ("mem", round),
    "memory_max": ("maxmem", round),
    "net_in": ("netin", lambda rate: round(rate, 2)),
    "net_out": ("netout", lambda rate: round(rate, 2)),
    "disk_read": ("diskread", lambda rate: round(rate, 2)),
    "disk_write": ("diskwrite", lambda rate: round(rate, 2)),
}


def guest_metrics(deployment, proxmox, timeframe="hour"):
    """{"timeframe", "points"}: the series of the deployment's guest over timeframe (hour, day or week), oldest
    first, each point {"time": unix seconds, "cpu": percent of its cores, "memory", "memory_max": bytes,
    "net_in", "net_out", "disk_read", "disk_write": bytes per second}, None where Proxmox has no figure (before
    the guest existed).

    proxmox: the platform's clients (None without a cluster). Refuses: 422 validation_error for another
    timeframe; 409 no_guest while the deployment has no guest (not provisioned yet, or deleted); 503
    proxmox_unavailable when Proxmox does not answer, refuses, or is not configured.
    """
    if timeframe not in TIMEFRAMES:
        raise ValidationFailed("the request is not valid",
                               fields={"timeframe": f"must be one of: {', '.join(TIMEFRAMES)}"})
    if deployment.vm_id is None or deployment.node is None or deployment.status is DeploymentStatus.DELETED:
        raise Conflict(f"deployment {deployment.name} has no guest (it is {deployment.status.value}), so there are "
                       "no metrics to read yet", code="no_guest")
    if proxmox is None:
        raise DomainError(NOT_CONFIGURED, code="proxmox_unavailable", status=503)
    try:
        entries = proxmox.quick_client().rrd_data(deployment.node, deployment.vm_id, deployment.guest_kind,
                                                  timeframe, cf="AVERAGE")
    except ProxmoxError as exc:
        raise DomainError(public_message(exc), code="proxmox_unavailable", status=503) from None
    points = [point for point in map(normalised, entries) if point is not None]
    return {"timeframe": timeframe, "points": sorted(points, key=lambda point: point["time"])}


def normalised(entry):
    """One of Proxmox's points in our names and units; None for something that is not a point."""
    if not isinstance(entry, dict):
        return None
    time = _number(entry.get("time"))
    if time is None:
        return None
    point = {"time": int(time)}
    for name, (key, convert) in FIGURES.items():
        value = _number(entry.get(key))
        point[name] = None if value is None else convert(value)
    return point


def _number(value):
    """value as a finite float, or None (absent, not a number, NaN)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
