"""Provisioning: a pending deployment gets its guest, its address and its first release.

Rules every job keeps:
- it takes a deployment id and reloads the row; each status change is committed at once (with an event);
- it never holds a database session while it waits on Proxmox (lifecycle.apply releases it);
- it is safe to run twice: a second run finds the guest by its tag (or its recorded VMID) and carries on;
- it always reaches a final state, within its time limit; a failure destroys what the job created;
- a delete wins: when the row turns deleting, the job destroys the guest instead of finishing.
"""
import dataclasses
import logging
import random

from backend.models import DeploymentStatus
from backend.proxmox.errors import GuestExists, ProxmoxError
from backend.services import ippool, lifecycle, restoring
from backend.services.guests import PLATFORM_TAG, destroy_guest, find_guests, load_snapshot, wait_unlocked
from backend.services.job_context import AppError, Cancelled, LeaseLost, StepFailed, Superseded, expect, transition
from backend.services.lifecycle import apply, change_status, record
from backend.services.teardown import destroy, fail_and_clean_up

log = logging.getLogger(__name__)

VMID_ATTEMPTS = 25


def provision(ctx, deploy_app=None):
    """pending -> provisioning -> deploying -> running, or failed; a delete on the way wins.

    deploy_app(ctx, snapshot) runs the deploy step on the guest (None: the job stops at a running guest).
    """
    deployment = load_snapshot(ctx.deployment_id)
    status = deployment.status
    if status in (DeploymentStatus.DELETING, DeploymentStatus.DELETED):
        return destroy(ctx)
    if status not in (DeploymentStatus.PENDING, DeploymentStatus.PROVISIONING, DeploymentStatus.DEPLOYING):
        log.info("deployment %s is %s already; nothing to provision", deployment.id, status.value)
        return status
    step = "provisioning"
    try:
        if status is DeploymentStatus.PENDING:
            transition(ctx, {DeploymentStatus.PENDING}, DeploymentStatus.PROVISIONING, "provisioning started")
            status = DeploymentStatus.PROVISIONING
        if status is DeploymentStatus.PROVISIONING:
            step = "placement"
            guest = _existing_guest(ctx, deployment)
            if guest is None and deployment.restore_from is not None:
                node = restoring.choose_node(ctx, deployment)
                ctx.checkpoint()
                step = "restore"
                vmid = _create_guest(ctx, deployment, node, restoring.starter(ctx, deployment))
            elif guest is None:
                node = _choose_node(ctx, deployment)
                ctx.checkpoint()
                step = "create" if deployment.kind == "lxc" else "clone"
                vmid = _create_guest(ctx, deployment, node)
            else:
                node, vmid = guest["node"], guest["vmid"]
                record(deployment.id, "step", f"resuming with {deployment.kind} {vmid} on {node}, found by its tag")
                lifecycle.claim_vmid(deployment.id, node, vmid)
                wait_unlocked(ctx, vmid)
            # From here a guest exists: a cleanup that cannot reload the row must still know it.
            deployment = dataclasses.replace(deployment, node=node, vm_id=vmid)
            ctx.checkpoint()
            if deployment.kind == "qemu":
                step = "configure"
                _configure_vm(ctx, deployment, node, vmid)
                ctx.checkpoint()
            step = "start"
            _start(ctx, deployment, node, vmid)
            ctx.checkpoint()
            step = "address"
            client = ctx.proxmox()
            address = client.guest_ip(node, vmid, deployment.kind,
                                      timeout=min(client.settings.ip_timeout, ctx.whole_seconds_left()))
            ctx.checkpoint()

            def to_deploying(row):
                expect(row, {DeploymentStatus.PROVISIONING})
                row.ip_address = address
                change_status(row, DeploymentStatus.DEPLOYING, f"{deployment.kind} {vmid} on {node} is up at {address}")
            apply(deployment.id, to_deploying)
        step = "deploy"
        if deployment.restore_from is not None:  # cleared once restored: later releases build as usual
            step = "restore"
            restoring.adopt_release(ctx, load_snapshot(deployment.id))
        elif deploy_app is not None:
            deploy_app(ctx, load_snapshot(deployment.id))
        ctx.checkpoint()
        transition(ctx, {DeploymentStatus.DEPLOYING}, DeploymentStatus.RUNNING, "running")
        return DeploymentStatus.RUNNING
    except Cancelled:
        return destroy(ctx)
    except LeaseLost:
        raise
    except Superseded as exc:
        log.info("deployment %s: %s", deployment.id, exc)
        return lifecycle.current_status(deployment.id)
    except Exception as exc:  # noqa: BLE001 - every failure ends in status failed, with its reason
        if lifecycle.current_status(deployment.id) in (DeploymentStatus.DELETING, DeploymentStatus.DELETED):
            return destroy(ctx)
        if isinstance(exc, AppError) and exc.keep_guest:
            return _fail_keeping_guest(deployment, step, exc)
        return fail_and_clean_up(ctx, deployment, step, exc)


def _fail_keeping_guest(deployment, step, exc):
    """Status failed, the guest left as it is (it served before; a redeploy may bring it back)."""
    message = str(StepFailed(step, exc))
    log.warning("deployment %s: %s", deployment.id, message)

    def to_failed(row):
        if row.status in (DeploymentStatus.DEPLOYING, DeploymentStatus.RUNNING):
            change_status(row, DeploymentStatus.FAILED, message)
        return row.status
    return apply(deployment.id, to_failed)


def _existing_guest(ctx, deployment):
    guests = find_guests(ctx, deployment)
    if len(guests) > 1:
        # Only possible when an earlier run was cut off between two creates: keep one.
        keep = next((g for g in guests if g["vmid"] == deployment.vm_id), guests[0])
        for extra in guests:
            if extra["vmid"] != keep["vmid"]:
                destroy_guest(ctx, deployment, extra)
        return keep
    return guests[0] if guests else None


def _choose_node(ctx, deployment):
    client = ctx.proxmox()
    resources = deployment.resources
    template_node = None
    if deployment.kind == "qemu":
        if not client.settings.vm_template_id:
            raise ProxmoxError("no VM template configured (PROXMOX_VM_TEMPLATE_ID)")
        template_node = client.template_node(client.settings.vm_template_id)
    node = client.choose_node(resources["memory"], resources["disk"], template_node=template_node)
    record(deployment.id, "step", f"placed on node {node}")
    return node


def _pick_vmid(client, tried):
    """A VMID Proxmox says is free now, never one this run already collided on."""
    vmid = client.next_vmid()
    while vmid in tried:
        # nextid keeps answering an id that is taken by now: probe above it, spread by jitter.
        candidate = max(tried) + 1 + random.randrange(10)
        try:
            vmid = client.check_vmid(candidate)
        except ProxmoxError as exc:
            if exc.status != 400:
                raise
            tried.add(candidate)
    return vmid


def _create_guest(ctx, deployment, node, start_restore=None):
    """Allocate a VMID and create the guest (or restore it, with start_restore(client, node, vmid, ip_cidr) ->
    (task id, what)); collisions (Proxmox's or the database's) retry with a fresh id."""
    client = ctx.proxmox()
    resources = deployment.resources
    tags = [PLATFORM_TAG, deployment.tag]
    tried = set()
    for attempt in range(VMID_ATTEMPTS):
        vmid = _pick_vmid(client, tried)
        tried.add(vmid)
        if not lifecycle.claim_vmid(deployment.id, node, vmid):
            ctx.sleep(random.uniform(0.01, 0.1))
            continue  # another deployment holds this VMID in the database
        try:
            if start_restore is not None:
                upid, what = start_restore(client, node, vmid, _static_ip(ctx, deployment) if deployment.kind == "lxc"
                                           else None)
            elif deployment.kind == "lxc":
                upid = client.create_lxc(node, vmid, hostname=deployment.name, cores=resources["cores"],
                                         memory=resources["memory"], disk=resources["disk"], tags=tags,
                                         ip_cidr=_static_ip(ctx, deployment))
            else:
                upid = client.clone_vm(node, vmid, name=deployment.name)
        except GuestExists:
            log.info("VMID %s was taken meanwhile; trying another (attempt %d)", vmid, attempt + 1)
            # Not ours: forget it at once, so that nothing later mistakes that guest for this deployment's.
            lifecycle.claim_vmid(deployment.id, None, None)
            ctx.sleep(random.uniform(0.05, 0.3))
            continue
        if start_restore is None:
            what = ("creating container" if deployment.kind == "lxc"
                    else f"cloning template {client.settings.vm_template_id}")
        record(deployment.id, "task", f"{what} {vmid} on {node}", upid=upid)
        timeout = ctx.platform.backups.timeout if start_restore is not None else client.settings.task_timeout
        client.wait_for_task(upid, timeout=min(timeout, ctx.whole_seconds_left()))
        return vmid
    raise ProxmoxError(f"no free VMID after {VMID_ATTEMPTS} attempts")


def _static_ip(ctx, deployment):
    """The address from the static pool for this deployment, or None for DHCP."""
    settings = ctx.proxmox().settings
    if not settings.ip_pool:
        return None
    return ippool.allocate(deployment.id, settings.ip_pool)


def _configure_vm(ctx, deployment, node, vmid):
    client = ctx.proxmox()
    resources = deployment.resources
    client.configure_vm(node, vmid, cores=resources["cores"], memory=resources["memory"],
                        tags=[PLATFORM_TAG, deployment.tag], ip_cidr=_static_ip(ctx, deployment))
    client.grow_vm_disk(node, vmid, resources["disk"])
    record(deployment.id, "step", f"configured VM {vmid}: {resources['cores']} cores, "
                                  f"{resources['memory']} MB, {resources['disk']} GB disk, cloud-init")


def _start(ctx, deployment, node, vmid):
    client = ctx.proxmox()
    if client.status(node, vmid, deployment.kind)["status"] != "running":
        upid = client.start(node, vmid, deployment.kind)
        record(deployment.id, "task", f"started {deployment.kind} {vmid}", upid=upid)
