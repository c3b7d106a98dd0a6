"""GET /health: the process answers, the database is reachable, and whether Proxmox is."""
from flask import Blueprint
from spectree import Response

from backend.api.spec import spec
from backend.platform import platform_of
from backend.schemas.meta import HealthOut
from backend.services.cluster import proxmox_health
from backend.services.database import database_is_reachable

health_bp = Blueprint("health", __name__)


@health_bp.get("/health")
@spec.validate(resp=Response(HTTP_200=HealthOut, HTTP_503=HealthOut), tags=["health"], security={})
def health():
    """200 when the database answers, 503 when it does not; `proxmox` says whether the cluster is configured
    and answers (a cluster that is down does not make the API unhealthy: reads and queued work go on)."""
    proxmox = proxmox_health(platform_of().proxmox)
    if not database_is_reachable():
        return {"status": "unavailable", "database": "unreachable", "proxmox": proxmox}, 503
    return {"status": "ok", "database": "ok", "proxmox": proxmox}
