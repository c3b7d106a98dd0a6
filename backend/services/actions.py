"""Acting on a guest that exists: start, stop, restart, resize; and the last resort when a job crashes."""
import logging

from backend.models import DeploymentStatus
from backend.proxmox.client import usable_ipv4
from backend.proxmox.errors import ProxmoxError
from backend.services import lifecycle
from backend.services.guests import load_snapshot, tell_guest_hooks
from backend.services.job_context import Cancelled, JobTimeout, StepFailed
from backend.services.lifecycle import apply, change_status, record
from backend.services.teardown import destroy

log = logging.getLogger(__name__)

ACTIONS = {
    # action: (statuses it applies to, status afterwards)
    "start": ({DeploymentStatus.STOPPED}, DeploymentStatus.RUNNING),
    "stop": ({DeploymentStatus.RUNNING}, DeploymentStatus.STOPPED),
    "restart": ({DeploymentStatus.RUNNING}, DeploymentStatus.RUNNING),
}
HOOK_AFTER = {"start": "started", "stop": "stopped", "restart": "restarted"}


def power(ctx, action):
    """Start, stop or restart the guest; the status follows. A failed action leaves the status and says why."""
    allowed, after = ACTIONS[action]
    deployment = load_snapshot(ctx.deployment_id)
    if deployment.status not in allowed or deployment.vm_id is None:
        record(deployment.id, "action", f"{action} skipped: the deployment is {deployment.status.value} now")
        return deployment.status
    node, vmid, kind = deployment.node, deployment.vm_id, deployment.kind
    client = None
    try:
        client = ctx.proxmox()
        if action == "start":
            # The guest gets the deployment's current size first (a resize queued behind this start is moot).
            resources = deployment.resources
            client.set_size(node, vmid, kind, cores=resources["cores"], memory=resources["memory"])
            client.grow_disk(node, vmid, kind, resources["disk"])
            # An earlier start may have brought the guest up and failed after (its address): start only what is down.
            if client.status(node, vmid, kind)["status"] != "running":
                upid = client.start(node, vmid, kind)
                record(deployment.id, "task", f"starting {kind} {vmid}", upid=upid)
            address = client.guest_ip(node, vmid, kind,
                                      timeout=min(client.settings.ip_timeout, ctx.whole_seconds_left()))
        elif action == "stop":
            upid = client.shutdown(node, vmid, kind, timeout=min(60, ctx.whole_seconds_left()))
            record(deployment.id, "task", f"shut down {kind} {vmid}", upid=upid)
            address = None
        else:
            upid = client.reboot(node, vmid, kind)
            record(deployment.id, "task", f"rebooted {kind} {vmid}", upid=upid)
            address = None
    except Cancelled:
        return destroy(ctx)
    except (ProxmoxError, JobTimeout) as exc:
        _note_failure(deployment.id, str(StepFailed(action, exc)))
        return deployment.status

    tell_guest_hooks(ctx, HOOK_AFTER[action], deployment)

    def done(row):
        if row.status not in allowed:
            return
        if address and usable_ipv4(address, client.settings.loopback_guests):
            row.ip_address = address
        row.error_message = None
        if after is row.status:
            lifecycle.add_event(row, "action", f"{action}ed {kind} {vmid}")
        else:
            change_status(row, after, f"{action} done")
    apply(deployment.id, done)
    return after


def resize(ctx):
    """Give a stopped guest the deployment's resources (cores, memory; the disk only grows)."""
    deployment = load_snapshot(ctx.deployment_id)
    if deployment.status is not DeploymentStatus.STOPPED or deployment.vm_id is None:
        record(deployment.id, "action", f"resize skipped: the deployment is {deployment.status.value} now")
        return deployment.status
    node, vmid, kind = deployment.node, deployment.vm_id, deployment.kind
    resources = deployment.resources
    try:
        client = ctx.proxmox()
        client.set_size(node, vmid, kind, cores=resources["cores"], memory=resources["memory"])
        client.grow_disk(node, vmid, kind, resources["disk"])
    except Cancelled:
        return destroy(ctx)
    except (ProxmoxError, JobTimeout) as exc:
        _note_failure(deployment.id, str(StepFailed("resize", exc)))
        return deployment.status
    record(deployment.id, "step", f"resized {kind} {vmid}: {resources['cores']} cores, "
                                  f"{resources['memory']} MB, {resources['disk']} GB disk")
    return deployment.status


def _note_failure(deployment_id, message):
    """An action that failed leaves the status as it was, with the reason as error and event."""
    def change(row):
        row.error_message = message
        lifecycle.add_event(row, "error", message)
    apply(deployment_id, change)


UNFINISHED = (DeploymentStatus.PENDING, DeploymentStatus.PROVISIONING, DeploymentStatus.DEPLOYING,
              DeploymentStatus.DELETING)


def finish_after_crash(deployment_id, kind, exc):
    """Last resort when a job died of something unexpected: never leave the row mid-way."""
    message = f"{kind} stopped by an internal error ({exc.__class__.__name__}); see the server log"

    def to_failed(row):
        if row.status in UNFINISHED:
            change_status(row, DeploymentStatus.FAILED, message)
    try:
        apply(deployment_id, to_failed)
    except Exception:
        log.exception("could not record the failure of %s on %s", kind, deployment_id)
