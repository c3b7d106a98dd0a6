"""The deployment lifecycle: one enum and one table of allowed transitions.

Pure domain: the models store it, the schemas name it, and neither owns it.
"""
import enum

from backend.errors import IllegalTransition


# No docstring: it would become the enum's description in the OpenAPI document.
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


# The only place that says which status may follow which.
ALLOWED_TRANSITIONS = {
    DeploymentStatus.PENDING: {DeploymentStatus.PROVISIONING, DeploymentStatus.FAILED, DeploymentStatus.DELETING},
    DeploymentStatus.PROVISIONING: {DeploymentStatus.DEPLOYING, DeploymentStatus.FAILED, DeploymentStatus.DELETING},
    DeploymentStatus.DEPLOYING: {DeploymentStatus.RUNNING, DeploymentStatus.FAILED, DeploymentStatus.DELETING},
    DeploymentStatus.RUNNING: {DeploymentStatus.STOPPED, DeploymentStatus.DEPLOYING, DeploymentStatus.FAILED,
                               DeploymentStatus.DELETING},
    DeploymentStatus.STOPPED: {DeploymentStatus.RUNNING, DeploymentStatus.DEPLOYING, DeploymentStatus.FAILED,
                               DeploymentStatus.DELETING},
    DeploymentStatus.FAILED: {DeploymentStatus.PENDING, DeploymentStatus.PROVISIONING, DeploymentStatus.DEPLOYING,
                              DeploymentStatus.DELETING},
    DeploymentStatus.DELETING: {DeploymentStatus.DELETED, DeploymentStatus.FAILED},
    DeploymentStatus.DELETED: set(),
}

# Statuses in which the guest is being worked on or serving, so its size is fixed.
BUSY_STATUSES = {DeploymentStatus.PROVISIONING, DeploymentStatus.DEPLOYING, DeploymentStatus.RUNNING,
                 DeploymentStatus.DELETING}


def check_transition(current, target):
    """Raise IllegalTransition unless the lifecycle table allows current -> target."""
    current, target = DeploymentStatus(current), DeploymentStatus(target)
    if target not in ALLOWED_TRANSITIONS[current]:
        raise IllegalTransition(current.value, target.value)
