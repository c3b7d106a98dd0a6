"""Persistence: SQLAlchemy models and their class-method queries."""
from backend.models.audit import AuditEntry
from backend.models.backup import Backup
from backend.models.deployment_sqlalchemy import DEPLOYMENT_TYPES, Deployment
from backend.models.domain import Domain
from backend.models.event import DeploymentEvent, IpReservation
from backend.models.release import LogLine, Release
from backend.models.user import ROLES, ApiToken, User
from backend.models.web_session import WebSession
from backend.models.webhook import GithubDelivery, Notification
from backend.status import ALLOWED_TRANSITIONS, DeploymentStatus

__all__ = ["ALLOWED_TRANSITIONS", "DEPLOYMENT_TYPES", "ROLES", "ApiToken", "AuditEntry", "Backup", "Deployment",
           "DeploymentEvent", "Domain", "DeploymentStatus", "GithubDelivery", "IpReservation", "LogLine",
           "Notification", "Release", "User", "WebSession"]
