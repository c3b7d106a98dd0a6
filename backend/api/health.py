"""GET /health: the process answers and the database is reachable."""
from flask import Blueprint
from spectree import Response

from backend.api.schemas import HealthOut
from backend.api.spec import spec
from backend.services.database import database_is_reachable

health_bp = Blueprint("health", __name__)


@health_bp.get("/health")
@spec.validate(resp=Response(HTTP_200=HealthOut, HTTP_503=HealthOut), tags=["health"], security={})
def health():
    """200 when the database answers, 503 when it does not."""
    if not database_is_reachable():
        return {"status": "unavailable", "database": "unreachable"}, 503
    return {"status": "ok", "database": "ok"}
