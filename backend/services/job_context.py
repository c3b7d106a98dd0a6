"""One run of a job: its deadline, its cancellation, its collaborators, and the errors that end it.

JobContext is what a deploy run is handed as its RunControl (backend/deploy/control.py), and what
every provisioning step checks between calls.
"""
import threading
import time

from backend.deploy.control import Interrupted
from backend.models import DeploymentStatus
from backend.proxmox.errors import ProxmoxError
from backend.services import lifecycle
from backend.services.lifecycle import apply, change_status


class Cancelled(Interrupted):
    """The deployment was deleted while the job worked on it."""


class LeaseLost(Interrupted):
    """Another run took the deployment over (this one stalled past its lease): stop, touch nothing."""


class JobTimeout(TimeoutError):
    """The job ran past its time limit."""


class AppError(Exception):
    """A failure of the user's app, repository or guest (a build, a health check), worded for the user.

    keep_guest: the guest served a release before and must not be destroyed for this failure.
    """

    def __init__(self, message, keep_guest=False):
        super().__init__(message)
        self.keep_guest = keep_guest


class StepFailed(Exception):
    """'<step> failed: <why>': Proxmox's own words, a time limit, or (for a bug) only the error's class."""

    def __init__(self, step, error):
        self.step = step
        self.error = error
        if isinstance(error, ProxmoxError):
            detail = error.describe()
        elif isinstance(error, (JobTimeout, AppError)):
            detail = str(error)
        else:
            detail = f"internal error ({error.__class__.__name__})"
        super().__init__(f"{step} failed: {detail}")


class Superseded(Exception):
    """The row moved on without this run (another run finished it, or a user acted)."""


class JobContext:
    """One run of a job on one deployment: a deadline, a cancellation flag, the platform's collaborators
    (platform: built by backend/bootstrap.py, or fakes in tests) and a Proxmox client whose waits honour
    both the deadline and the flag."""

    def __init__(self, deployment_id, platform=None, *, time_limit=900, watch_deletion=True):
        self.deployment_id = deployment_id
        self.platform = platform
        self.deadline = time.monotonic() + time_limit
        self.time_limit = time_limit
        self.cancelled = threading.Event()
        self.lease_lost = threading.Event()
        self.watch_deletion = watch_deletion
        proxmox = platform.proxmox if platform is not None else None
        self.client = proxmox.job_client(self.sleep) if proxmox is not None else None

    def sleep(self, seconds):
        """Sleep, but wake early to stop when the deployment is deleted or the time is up."""
        end = time.monotonic() + seconds
        while True:
            self.check()
            left = end - time.monotonic()
            if left <= 0:
                return
            self.cancelled.wait(min(left, 0.25))

    def check(self):
        if self.lease_lost.is_set():
            raise LeaseLost()
        if self.watch_deletion and self.cancelled.is_set():
            raise Cancelled()
        if time.monotonic() > self.deadline:
            raise JobTimeout(f"the job ran out of its {self.time_limit} s time limit")

    def checkpoint(self):
        """Between steps: notice a delete at once (the heartbeat only looks every few seconds)."""
        if self.watch_deletion and lifecycle.current_status(self.deployment_id) in (DeploymentStatus.DELETING,
                                                                                    DeploymentStatus.DELETED):
            self.cancelled.set()
        self.check()

    def seconds_left(self):
        return self.deadline - time.monotonic()

    def whole_seconds_left(self):
        """The time left as a timeout for a Proxmox wait: at least one second."""
        return max(1, int(self.seconds_left()))

    def extend(self, seconds):
        self.deadline = max(self.deadline, time.monotonic() + seconds)

    def proxmox(self):
        if self.client is None:
            raise ProxmoxError("Proxmox is not configured: set PROXMOX_HOST and its credentials")
        return self.client


def expect(row, statuses):
    """Go on only while the row is in one of statuses: Cancelled once it is being deleted, else Superseded."""
    if row.status in (DeploymentStatus.DELETING, DeploymentStatus.DELETED):
        raise Cancelled()
    if row.status not in statuses:
        raise Superseded(f"status is {row.status.value}, not {'/'.join(s.value for s in statuses)}")


def transition(ctx, expected, target, message):
    """Move the job's deployment from one of expected to target, with message as its event."""
    def change(row):
        expect(row, expected)
        change_status(row, target, message)
    apply(ctx.deployment_id, change)
