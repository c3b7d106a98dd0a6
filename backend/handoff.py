"""What the HTTP entry points (the API and the dashboard) share: handing a deployment's job to the job backend."""
import logging

from backend.errors import DomainError
from backend.platform import platform_of
from backend.services import deployments as service

log = logging.getLogger(__name__)


def enqueue(kind, deployment):
    """Hand the job over; a queue that cannot take it fails the deployment instead of stranding it."""
    try:
        platform_of().jobs.submit(kind, deployment.id)
    except Exception as exc:  # noqa: BLE001 - the broker's failure modes are many
        log.error("could not queue %s of %s: %s", kind, deployment.id, exc.__class__.__name__)
        if kind == "provision":
            # The create itself succeeded: answer it, with the deployment failed and saying why.
            service.fail_unqueued(deployment, f"the job queue is unreachable ({exc.__class__.__name__})")
            return
        # The request is recorded (status deleting, or the action's event); the periodic sweep or the
        # next worker start picks it up. Say so rather than promise work nobody will do soon.
        raise DomainError("the job queue is unreachable; the request is recorded and will run when it is back",
                          code="queue_unavailable", status=503) from None
