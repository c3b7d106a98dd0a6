"""Persistence: SQLAlchemy models and their class-method queries."""
from backend.models.deployment_sqlalchemy import DEPLOYMENT_TYPES, Deployment
from backend.models.event import DeploymentEvent, IpReservation
from backend.models.release import LogLine, Release
from backend.models.status import ALLOWED_TRANSITIONS, DeploymentStatus

__all__ = ["ALLOWED_TRANSITIONS", "DEPLOYMENT_TYPES", "Deployment", "DeploymentEvent", "IpReservation", "DeploymentStatus",
           "LogLine", "Release"]
