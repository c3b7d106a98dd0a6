"""The deployment lifecycle: one enum and one table of allowed transitions."""
import enum

from backend.errors import IllegalTransition


class DeploymentStatus(str, enum.Enum):
    PENDING = "pending"
    PROVISIONING = "provisioning"
    DEPLOYING = "deploying"
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"
    DELETING = "deleting"
    DELETED = "deleted"

    def __str__(self):
        return self.value


S = DeploymentStatus

# The only place that says which status may follow which.
ALLOWED_TRANSITIONS = {
    S.PENDING: {S.PROVISIONING, S.FAILED, S.DELETING},
    S.PROVISIONING: {S.DEPLOYING, S.FAILED, S.DELETING},
    S.DEPLOYING: {S.RUNNING, S.FAILED, S.DELETING},
    S.RUNNING: {S.STOPPED, S.DEPLOYING, S.FAILED, S.DELETING},
    S.STOPPED: {S.RUNNING, S.DEPLOYING, S.FAILED, S.DELETING},
    S.FAILED: {S.PENDING, S.PROVISIONING, S.DEPLOYING, S.DELETING},
    S.DELETING: {S.DELETED, S.FAILED},
    S.DELETED: set(),
}

# Statuses in which the guest is being worked on or serving, so its size is fixed.
BUSY_STATUSES = {S.PROVISIONING, S.DEPLOYING, S.RUNNING, S.DELETING}


def check_transition(current, target):
    """Raise IllegalTransition unless the lifecycle table allows current -> target."""
    current, target = DeploymentStatus(current), DeploymentStatus(target)
    if target not in ALLOWED_TRANSITIONS[current]:
        raise IllegalTransition(current.value, target.value)
