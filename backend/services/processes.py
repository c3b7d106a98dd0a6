"""The app's processes: web and the Procfile's others, as the live release runs them, and their state on the guest."""
from dataclasses import dataclass

from backend.deploy.transport import TransportError, process_service
from backend.errors import DomainError, InvalidState, NotFound
from backend.models import DeploymentStatus, Release
from backend.services.guests import guest_target

# While a deployment is in one of these, its guest has (or had) the app's services to look at.
READABLE = (DeploymentStatus.RUNNING, DeploymentStatus.DEPLOYING, DeploymentStatus.FAILED, DeploymentStatus.STOPPED)


@dataclass(frozen=True)
class ProcessInfo:
    name: str
    command: str | None
    service: str
    state: str
    restarts: int | None = None
    detail: str | None = None


def require_guest(deployment, transports, what):
    """Refuse (409) when the deployment has no guest running an app to ask about."""
    if transports is None or deployment.status not in READABLE:
        raise InvalidState(f"there is no {what} to read while the deployment is {deployment.status.value}")
    if deployment.vm_id is None or deployment.live_release is None:
        raise InvalidState("no release of this deployment has served yet")


def live_processes(deployment):
    """{name: command line} of the processes the live release runs (web first)."""
    live = Release.get(deployment.id, deployment.live_release) if deployment.live_release is not None else None
    return processes_of(live)


def processes_of(release):
    """{name: command line} of the processes a release runs (web first); {"web": None} without one."""
    config = (release.config or {}) if release is not None else {}
    processes = config.get("processes")
    if not isinstance(processes, dict) or "web" not in processes:
        processes = {"web": config.get("start")}  # a release recorded before processes were
    return processes


def require_process(deployment, name):
    """The service a process of the live release runs as; NotFound for a process it does not run."""
    processes = live_processes(deployment)
    if name not in processes:
        raise NotFound(f"release {deployment.live_release} runs no process {name!r}; it runs: "
                       + ", ".join(processes), fields={"process": "unknown"})
    return process_service(name)


def process_states(deployment, transports):
    """(the live release's version, every process of it with its state read from the guest now).

    What it needs of the row is read before the guest is reached: recording a guest's host key on first
    contact commits in a session of its own, after which the row is no longer loaded."""
    require_guest(deployment, transports, "process")
    release = deployment.live_release
    processes = live_processes(deployment)
    try:
        transport = transports.open(guest_target(deployment))
        try:
            found = []
            for name, command in processes.items():
                service = process_service(name)
                state = transport.service_state(service)
                found.append(ProcessInfo(name, command, service, state.state, state.restarts, state.detail))
            return release, found
        finally:
            transport.close()
    except TransportError as exc:
        raise DomainError(f"the guest did not answer: {exc}", code="guest_unreachable", status=502) from None
