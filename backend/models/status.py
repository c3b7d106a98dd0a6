"""The lifecycle lives in backend/status.py (the schemas need it and must not import the models); this keeps
`backend.models.status` importable for the code that still names it."""
from backend.status import ALLOWED_TRANSITIONS, BUSY_STATUSES, DeploymentStatus, check_transition

__all__ = ["ALLOWED_TRANSITIONS", "BUSY_STATUSES", "DeploymentStatus", "check_transition"]
