"""GET /health: the process answers and the database is reachable."""
import logging

from flask import Blueprint
from spectree import Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from backend.api.schemas import HealthOut
from backend.api.spec import spec
from backend.extensions import db

health_bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@health_bp.get("/health")
@spec.validate(resp=Response(HTTP_200=HealthOut, HTTP_503=HealthOut), tags=["health"])
def health():
    """200 when the database answers, 503 when it does not."""
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.warning("health check: database unreachable (%s)", exc.__class__.__name__)
        return {"status": "unavailable", "database": "unreachable"}, 503
    return {"status": "ok", "database": "ok"}
