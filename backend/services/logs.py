"""The app's runtime log, read from its guest on request."""
from backend.deploy.transport import TransportError
from backend.errors import DomainError
from backend.models import Release
from backend.services import envvars
from backend.services.guests import guest_target
from backend.services.processes import require_guest, require_process


def runtime_log(deployment, lines, transports, process="web"):
    """The last `lines` lines a process of the app wrote (the journal of its unit on a real guest), read
    through transports (the platform's factory; None when the platform does not deploy apps)."""
    require_guest(deployment, transports, "app log")
    service = require_process(deployment, process)
    redact = envvars.redactor(_environment_values(deployment))
    try:
        transport = transports.open(guest_target(deployment))
        try:
            return [redact(line) for line in transport.service_log(service, lines=lines)]
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
