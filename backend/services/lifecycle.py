"""Status changes and their history: every change is an event, written in the same commit.

Jobs use apply(): load the row fresh, change it, commit, and on a racing change (the version
counter) reload and decide again. Nothing here holds a session after it returns.
"""
import logging
from datetime import timedelta

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from backend.extensions import db
from backend.models import Deployment, DeploymentEvent, DeploymentStatus
from backend.models.types import utcnow
from backend.services import notifications
from backend.services.transactions import transaction

log = logging.getLogger(__name__)

MAX_MESSAGE = 4000


def add_event(deployment, kind, message, *, from_status=None, to_status=None, upid=None):
    """Add an event for deployment to the session (the caller commits)."""
    event = DeploymentEvent(deployment_id=deployment.id, kind=kind, message=(message or "")[:MAX_MESSAGE],
                            from_status=from_status, to_status=to_status, upid=upid)
    db.session.add(event)
    return event


def change_status(deployment, target, message=""):
    """Move deployment to target (the lifecycle table decides) and record the event; the caller commits."""
    target = DeploymentStatus(target)
    before = deployment.status
    deployment.transition_to(target, message if target is DeploymentStatus.FAILED else None)
    add_event(deployment, "status", message or f"{before.value} -> {target.value}",
              from_status=before.value, to_status=target.value)
    notifications.queue_status_change(deployment, before.value, target.value, message)
    return deployment


def apply(deployment_id, change, attempts=5):
    """Run change(deployment) on a fresh copy of the row and commit; retried when another writer won.

    change may raise to abort (nothing is written). Returns change's result. The session is
    released afterwards, so no connection is held while the caller waits on Proxmox.
    """
    for attempt in range(attempts):
        try:
            with transaction() as session:
                deployment = session.get(Deployment, deployment_id, populate_existing=True)
                if deployment is None:
                    raise LookupError(f"deployment {deployment_id} does not exist")
                return change(deployment)
        except StaleDataError:
            log.info("deployment %s changed meanwhile; retrying (%d)", deployment_id, attempt + 1)
    raise RuntimeError(f"deployment {deployment_id} kept changing; gave up after {attempts} attempts")


def record(deployment_id, kind, message, upid=None):
    """Append one event on its own (a step, a Proxmox task, an action)."""
    with transaction() as session:
        deployment = session.get(Deployment, deployment_id)
        if deployment is not None:
            add_event(deployment, kind, message, upid=upid)


def claim_vmid(deployment_id, node, vmid):
    """Record the VMID a job is about to create; False when another live deployment holds it."""
    def change(deployment):
        deployment.node, deployment.vm_id = node, vmid

    try:
        apply(deployment_id, change)
        return True
    except IntegrityError:
        return False


# -- job leases ----------------------------------------------------------------------------


def _update_one(stmt):
    """Run an UPDATE of one deployment row and commit; True when it changed the row."""
    with transaction() as session:
        return session.execute(stmt).rowcount == 1


def take_lease(deployment_id, owner, seconds):
    """Take or renew the job lease; False while another job's lease is still valid.

    A plain UPDATE (the version counter is left alone: the lease is not user-visible state,
    so renewing it never makes a user's change look stale).
    """
    now = utcnow()
    table = Deployment.__table__
    stmt = (update(table)
            .where(table.c.id == deployment_id)
            .where(or_(table.c.job_lease_until.is_(None), table.c.job_lease_until < now,
                       table.c.job_owner == owner))
            .values(job_owner=owner, job_lease_until=now + timedelta(seconds=seconds)))
    return _update_one(stmt)


def renew_lease(deployment_id, owner, seconds):
    """Extend a lease this owner holds; False when it no longer holds it (another run took over)."""
    table = Deployment.__table__
    return _update_one(update(table).where(table.c.id == deployment_id, table.c.job_owner == owner)
                       .values(job_lease_until=utcnow() + timedelta(seconds=seconds)))


def lease_remaining(deployment_id):
    """Seconds until the current lease ends (0 when there is none)."""
    try:
        deployment = db.session.get(Deployment, deployment_id)
        if deployment is None or deployment.job_lease_until is None:
            return 0.0
        return max(0.0, (deployment.job_lease_until - utcnow()).total_seconds())
    finally:
        db.session.remove()


def release_lease(deployment_id, owner):
    table = Deployment.__table__
    _update_one(update(table).where(table.c.id == deployment_id, table.c.job_owner == owner)
                .values(job_owner=None, job_lease_until=None))


def current_status(deployment_id):
    """The status as the database has it now (None when the row is gone)."""
    try:
        deployment = db.session.get(Deployment, deployment_id, populate_existing=True)
        return deployment.status if deployment is not None else None
    finally:
        db.session.remove()
