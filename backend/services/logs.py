"""The app's runtime log, read from its guest on request."""
from flask import current_app

from backend.deploy.transport import TransportError
from backend.errors import DomainError, InvalidState
from backend.models import DeploymentStatus

S = DeploymentStatus


def runtime_log(deployment, lines):
    """The last `lines` lines the app wrote (the journal of its unit on a real guest)."""
    from backend.deploy.deployer import SERVICE  # noqa: PLC0415

    opener = current_app.extensions.get("deploy_transport")
    if opener is None or deployment.status not in (S.RUNNING, S.DEPLOYING, S.FAILED, S.STOPPED):
        raise InvalidState(f"there is no app log to read while the deployment is {deployment.status.value}")
    if deployment.vm_id is None or deployment.live_release is None:
        raise InvalidState("no release of this deployment has served yet")
    snapshot = {"id": deployment.id, "kind": deployment.guest_kind, "vm_id": deployment.vm_id}
    try:
        transport = opener(snapshot)
        try:
            return transport.service_log(SERVICE, lines=lines)
        finally:
            transport.close()
    except TransportError as exc:
        raise DomainError(f"the guest did not answer: {exc}", code="guest_unreachable", status=502) from None
