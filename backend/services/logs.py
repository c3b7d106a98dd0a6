"""The app's runtime log, read from its guest on request."""
from backend.deploy.transport import APP_SERVICE, TransportError
from backend.errors import DomainError, InvalidState
from backend.models import DeploymentStatus, Release
from backend.services import envvars
from backend.services.guests import guest_target

READABLE = (DeploymentStatus.RUNNING, DeploymentStatus.DEPLOYING, DeploymentStatus.FAILED, DeploymentStatus.STOPPED)


def runtime_log(deployment, lines, transports):
    """The last `lines` lines the app wrote (the journal of its unit on a real guest), read through
    transports (the platform's factory; None when the platform does not deploy apps)."""
    if transports is None or deployment.status not in READABLE:
        raise InvalidState(f"there is no app log to read while the deployment is {deployment.status.value}")
    if deployment.vm_id is None or deployment.live_release is None:
        raise InvalidState("no release of this deployment has served yet")
    redact = envvars.redactor(_environment_values(deployment))
    try:
        transport = transports.open(guest_target(deployment))
        try:
            return [redact(line) for line in transport.service_log(APP_SERVICE, lines=lines)]
        finally:
            transport.close()
    except TransportError as exc:
        raise DomainError(f"the guest did not answer: {exc}", code="guest_unreachable", status=502) from None


def _environment_values(deployment):
    """Every value of the environment now and of each recorded release (the app's log spans releases),
    so that they are masked in its output as in the build log."""
    tokens = [deployment.env_encrypted, *(r.env_encrypted for r in Release.for_deployment(deployment.id))]
    values = set()
    for token in tokens:
        values.update(envvars.decrypt(token).values())
    return {str(n): value for n, value in enumerate(sorted(values))}
