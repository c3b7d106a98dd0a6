"""Removing a deployment's guest: on delete, and after a failed provisioning (nothing half-made stays)."""
import logging

from sqlalchemy import update
from sqlalchemy.orm import object_session

from backend.models import DeploymentStatus, Release
from backend.models.types import utcnow
from backend.proxmox.errors import ProxmoxError
from backend.services import ippool, routing
from backend.services.guests import destroy_guest, find_guests, load_snapshot, tell_guest_hooks
from backend.services.job_context import AppError, Cancelled, JobTimeout, LeaseLost, StepFailed, transition
from backend.services.lifecycle import apply, change_status

log = logging.getLogger(__name__)

CLEANUP_SECONDS = 180


def forget_guest(row):
    """The guest is destroyed: no release serves any more, and none waiting will run on it."""
    row.live_release = None
    row.served_port = None
    session = object_session(row)
    session.execute(update(Release).where(Release.deployment_id == row.id, Release.status == "live")
                    .values(status="superseded"))
    # Its snapshots went with the guest.
    session.execute(update(Release).where(Release.deployment_id == row.id, Release.snapshot.is_not(None))
                    .values(snapshot=None))
    session.execute(update(Release).where(Release.deployment_id == row.id,
                                          Release.status.in_(("queued", "building")))
                    .values(status="cancelled", finished_at=utcnow(), error_message="the guest was removed"))


def _destroy_all(ctx, deployment):
    tell_guest_hooks(ctx, "destroying", deployment)
    for guest in find_guests(ctx, deployment):
        destroy_guest(ctx, deployment, guest)


def fail_and_clean_up(ctx, deployment, step, exc):
    """Destroy what exists of the guest, then status failed with the step and Proxmox's words."""
    reason = StepFailed(step, exc)
    if isinstance(exc, (ProxmoxError, JobTimeout, AppError)):
        log.warning("deployment %s: %s", deployment.id, reason)  # worded failures: no traceback
    else:
        log.exception("deployment %s: unexpected error in step %s", deployment.id, step)
    message = str(reason)
    cleanup_error = None
    ctx.extend(CLEANUP_SECONDS)  # the cleanup gets its own time
    ctx.watch_deletion = False
    current = deployment
    try:
        current = load_snapshot(deployment.id)
        if ctx.client is not None or current.may_have_guest:
            _destroy_all(ctx, current)
    except LeaseLost:
        raise
    except Exception as cleanup:  # noqa: BLE001
        if current.may_have_guest:
            # Like StepFailed: an unexpected error is named by its class only (its text may hold anything).
            cleanup_error = (cleanup.describe() if isinstance(cleanup, ProxmoxError)
                             else f"internal error ({cleanup.__class__.__name__})")
            message += f"; the guest could not be removed ({cleanup_error}), reconcile will report it"
        else:
            log.info("deployment %s: no guest was ever asked for; nothing to remove (%s)", deployment.id,
                     cleanup.__class__.__name__)

    def to_failed(row):
        if row.status in (DeploymentStatus.FAILED, DeploymentStatus.DELETED):
            return row.status
        if row.status is DeploymentStatus.DELETING:
            raise Cancelled()
        if cleanup_error is None:
            row.ip_address = None
            row.vm_id = None
            row.node = None
            forget_guest(row)
        change_status(row, DeploymentStatus.FAILED, message)
        return DeploymentStatus.FAILED

    try:
        result = apply(deployment.id, to_failed)
    except Cancelled:
        return destroy(ctx)
    if cleanup_error is None:
        ippool.release(deployment.id)
    return result


def destroy(ctx):
    """Stop and destroy every guest of the deployment, then status deleted. Idempotent."""
    ctx.watch_deletion = False
    ctx.cancelled.clear()
    deployment = load_snapshot(ctx.deployment_id)
    if deployment.status is DeploymentStatus.DELETED:
        return DeploymentStatus.DELETED
    if deployment.status is not DeploymentStatus.DELETING:
        transition(ctx, set(DeploymentStatus) - {DeploymentStatus.DELETED, DeploymentStatus.DELETING},
                   DeploymentStatus.DELETING, "delete requested")
    # Its route goes before its guest does: no route points at a guest that is gone.
    routing.sync_quietly(getattr(ctx.platform, "edge", None), "a delete started")
    try:
        if ctx.client is not None or deployment.may_have_guest:
            _destroy_all(ctx, deployment)
    except LeaseLost:
        raise
    except Exception as exc:  # noqa: BLE001
        if not deployment.may_have_guest:
            # Proxmox is down or gone, but no guest was ever asked for: the delete needs nothing from it.
            log.info("deployment %s: no guest was ever asked for; deleted without Proxmox (%s)", deployment.id,
                     exc.__class__.__name__)
            return _mark_deleted(deployment)
        reason = StepFailed("delete", exc)
        log.warning("deployment %s: %s", deployment.id, reason)

        def to_failed(row):
            if row.status is DeploymentStatus.DELETING:
                change_status(row, DeploymentStatus.FAILED, f"{reason}; delete it again to retry")
        apply(deployment.id, to_failed)
        return DeploymentStatus.FAILED

    status = _mark_deleted(deployment)
    routing.sync_quietly(getattr(ctx.platform, "edge", None), "a delete")
    return status


def _mark_deleted(deployment):
    def to_deleted(row):
        if row.status is DeploymentStatus.DELETED:
            return
        change_status(row, DeploymentStatus.DELETED, "guest destroyed" if deployment.vm_id else "deleted")
        row.ip_address = None
        forget_guest(row)
        routing.forget_domains(object_session(row), row.id)
    apply(deployment.id, to_deleted)
    ippool.release(deployment.id)
    return DeploymentStatus.DELETED
