"""The app's runtime log, read from its guest on request."""
from flask import current_app

from backend.deploy.transport import TransportError
from backend.errors import DomainError, InvalidState
from backend.models import DeploymentStatus
from backend.services import envvars

S = DeploymentStatus


def runtime_log(deployment, lines):
    """The last `lines` lines the app wrote (the journal of its unit on a real guest)."""
    from backend.deploy.deployer import SERVICE  # noqa: PLC0415

    opener = current_app.extensions.get("deploy_transport")
    if opener is None or deployment.status not in (S.RUNNING, S.DEPLOYING, S.FAILED, S.STOPPED):
        raise InvalidState(f"there is no app log to read while the deployment is {deployment.status.value}")
    if deployment.vm_id is None or deployment.live_release is None:
        raise InvalidState("no release of this deployment has served yet")
    redact = envvars.redactor(_environment_values(deployment))
    snapshot = {"id": deployment.id, "kind": deployment.guest_kind, "vm_id": deployment.vm_id}
    try:
        transport = opener(snapshot)
        try:
            return [redact(line) for line in transport.service_log(SERVICE, lines=lines)]
        finally:
            transport.close()
    except TransportError as exc:
        raise DomainError(f"the guest did not answer: {exc}", code="guest_unreachable", status=502) from None


def _environment_values(deployment):
    """Every value of the environment now and of each recorded release (the app's log spans releases),
    so that they are masked in its output as in the build log."""
    from backend.models import Release  # noqa: PLC0415

    tokens = [deployment.env_encrypted, *(r.env_encrypted for r in Release.for_deployment(deployment.id))]
    values = set()
    for token in tokens:
        values.update(envvars.decrypt(token).values())
    return {str(n): value for n, value in enumerate(sorted(values))}
