"""What the background jobs do: provision, act on and destroy a deployment's guest.

Rules every job keeps:
- it takes a deployment id and reloads the row; each status change is committed at once (with an event);
- it never holds a database session while it waits on Proxmox (lifecycle.apply releases it);
- it is safe to run twice: a second run finds the guest by its tag (or its recorded VMID) and carries on;
- it always reaches a final state, within its time limit; a failure destroys what the job created;
- a delete wins: when the row turns deleting, the job destroys the guest instead of finishing.
"""
import logging
import random
import threading
import time

from flask import current_app

from backend.models import DeploymentStatus
from backend.proxmox.client import ProxmoxClient, usable_ipv4
from backend.proxmox.errors import GuestExists, ProxmoxError, ProxmoxTimeout
from backend.services import ippool, lifecycle
from backend.services.lifecycle import apply, change_status, record

log = logging.getLogger(__name__)
S = DeploymentStatus

VMID_ATTEMPTS = 25
CLEANUP_SECONDS = 180
PLATFORM_TAG = "paas"


class Cancelled(Exception):
    """The deployment was deleted while the job worked on it."""


class JobTimeout(Exception):
    """The job ran past its time limit."""


class LeaseLost(Exception):
    """Another run took the deployment over (this one stalled past its lease): stop, touch nothing."""


class AppError(Exception):
    """A failure of the user's app, repository or guest (a build, a health check), worded for the user.

    keep_guest: the guest served a release before and must not be destroyed for this failure.
    """

    def __init__(self, message, keep_guest=False):
        super().__init__(message)
        self.keep_guest = keep_guest


# Locks under which a guest is still being made: its name and tags are not written yet.
BEING_MADE = ("create", "clone")


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


class JobContext:
    """One run of a job: its deadline, its cancellation flag and a Proxmox client whose waits honour both."""

    def __init__(self, deployment_id, settings, *, api=None, time_limit=900, watch_deletion=True):
        self.deployment_id = deployment_id
        self.deadline = time.monotonic() + time_limit
        self.time_limit = time_limit
        self.cancelled = threading.Event()
        self.lease_lost = threading.Event()
        self.watch_deletion = watch_deletion
        self.client = ProxmoxClient(settings, api=api, sleep=self.sleep) if settings else None

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
        if self.watch_deletion and lifecycle.current_status(self.deployment_id) in (S.DELETING, S.DELETED):
            self.cancelled.set()
        self.check()

    def proxmox(self):
        if self.client is None:
            raise ProxmoxError("Proxmox is not configured: set PROXMOX_HOST and its credentials")
        return self.client


# -- finding a deployment's guest --------------------------------------------------------------


def find_guests(ctx, deployment):
    """The guests of this deployment: tagged with its id, or at its recorded VMID under its name.

    A guest still being created or cloned has neither name nor tags yet (the server writes them when the
    task ends); at the VMID the job recorded before it asked for the guest, such a guest is this one's.
    """
    client = ctx.proxmox()
    found = {}
    for guest in client.guests():
        if guest["template"]:
            continue
        tagged = deployment["tag"] in guest["tags"]
        at_vmid = guest["vmid"] == deployment["vm_id"]
        recorded = at_vmid and (guest["name"] == deployment["name"]
                                or (guest.get("lock") in BEING_MADE and not guest["name"] and not guest["tags"]))
        if tagged or recorded:
            found[guest["vmid"]] = guest
    return list(found.values())


def wait_unlocked(ctx, vmid, timeout=None):
    """Wait while a guest carries a lock (a create or clone of an earlier run still finishing)."""
    client = ctx.proxmox()
    deadline = time.monotonic() + (timeout or client.settings.task_timeout)
    while True:
        guest = next((g for g in client.guests() if g["vmid"] == vmid), None)
        if guest is None or not guest.get("lock"):
            return guest
        if time.monotonic() > deadline:
            raise ProxmoxTimeout(f"guest {vmid} is still locked ({guest['lock']})")
        ctx.sleep(0.5)


def snapshot(deployment):
    """The plain values a job needs, so that no ORM object outlives its session."""
    return {
        "id": deployment.id, "name": deployment.name, "status": deployment.status,
        "type": deployment.deployment_type, "kind": deployment.guest_kind, "tag": deployment.guest_tag,
        "resources": dict(deployment.resources), "node": deployment.node, "vm_id": deployment.vm_id,
        "framework": deployment.framework,
    }


def load(deployment_id):
    return apply(deployment_id, snapshot)


# -- provisioning ------------------------------------------------------------------------------------


def provision(ctx, deploy_app=None):
    """pending -> provisioning -> deploying -> running, or failed; a delete on the way wins."""
    d = load(ctx.deployment_id)
    if d["status"] in (S.DELETING, S.DELETED):
        return destroy(ctx)
    if d["status"] not in (S.PENDING, S.PROVISIONING, S.DEPLOYING):
        log.info("deployment %s is %s already; nothing to provision", d["id"], d["status"].value)
        return d["status"]
    step = "provisioning"
    try:
        if d["status"] is S.PENDING:
            _transition(ctx, {S.PENDING}, S.PROVISIONING, "provisioning started")
            d["status"] = S.PROVISIONING
        if d["status"] is S.PROVISIONING:
            step = "placement"
            guest = _existing_guest(ctx, d)
            if guest is None:
                node = _choose_node(ctx, d)
                ctx.checkpoint()
                step = "create" if d["kind"] == "lxc" else "clone"
                vmid = _create_guest(ctx, d, node)
            else:
                node, vmid = guest["node"], guest["vmid"]
                record(d["id"], "step", f"resuming with {d['kind']} {vmid} on {node}, found by its tag")
                lifecycle.claim_vmid(d["id"], node, vmid)
                wait_unlocked(ctx, vmid)
            d["node"], d["vm_id"] = node, vmid
            ctx.checkpoint()
            if d["kind"] == "qemu":
                step = "configure"
                _configure_vm(ctx, d)
                ctx.checkpoint()
            step = "start"
            _start(ctx, d)
            ctx.checkpoint()
            step = "address"
            ip = ctx.proxmox().guest_ip(d["node"], d["vm_id"], d["kind"],
                                        timeout=min(ctx.proxmox().settings.ip_timeout, _left(ctx)))
            ctx.checkpoint()

            def to_deploying(row):
                _expect(row, {S.PROVISIONING})
                row.ip_address = ip
                change_status(row, S.DEPLOYING, f"{d['kind']} {d['vm_id']} on {d['node']} is up at {ip}")
            apply(d["id"], to_deploying)
        step = "deploy"
        if deploy_app is not None:
            deploy_app(ctx, load(d["id"]))
        ctx.checkpoint()
        _transition(ctx, {S.DEPLOYING}, S.RUNNING, "running")
        return S.RUNNING
    except Cancelled:
        return destroy(ctx)
    except LeaseLost:
        raise
    except _Superseded as exc:
        log.info("deployment %s: %s", d["id"], exc)
        return lifecycle.current_status(d["id"])
    except Exception as exc:  # noqa: BLE001 - every failure ends in status failed, with its reason
        if lifecycle.current_status(d["id"]) in (S.DELETING, S.DELETED):
            return destroy(ctx)
        if isinstance(exc, AppError) and exc.keep_guest:
            return _fail_keeping_guest(d, step, exc)
        return _fail(ctx, d, step, exc)


def _guest_gone(row):
    """The guest is destroyed: no release serves any more, and none waiting will run on it."""
    from sqlalchemy import update  # noqa: PLC0415
    from sqlalchemy.orm import object_session  # noqa: PLC0415

    from backend.models import Release  # noqa: PLC0415
    from backend.models.types import utcnow  # noqa: PLC0415

    row.live_release = None
    row.served_port = None
    session = object_session(row)
    session.execute(update(Release).where(Release.deployment_id == row.id, Release.status == "live")
                    .values(status="superseded"))
    session.execute(update(Release).where(Release.deployment_id == row.id,
                                          Release.status.in_(("queued", "building")))
                    .values(status="cancelled", finished_at=utcnow(), error_message="the guest was removed"))


def _fail_keeping_guest(d, step, exc):
    """Status failed, the guest left as it is (it served before; a redeploy may bring it back)."""
    message = str(StepFailed(step, exc))
    log.warning("deployment %s: %s", d["id"], message)

    def to_failed(row):
        if row.status in (S.DEPLOYING, S.RUNNING):
            change_status(row, S.FAILED, message)
        return row.status
    return apply(d["id"], to_failed)


def guest_hook(event, d):
    """Tell the deploy layer what happened to a guest (a simulated guest's app follows its guest)."""
    hooks = current_app.extensions.get("guest_hooks")
    if hooks is None:
        return
    try:
        getattr(hooks, event)(d)
    except Exception:
        log.exception("guest hook %s failed for %s", event, d["id"])


class _Superseded(Exception):
    """The row moved on without us (another run finished it, or a user acted)."""


def _expect(row, statuses):
    if row.status in (S.DELETING, S.DELETED):
        raise Cancelled()
    if row.status not in statuses:
        raise _Superseded(f"status is {row.status.value}, not {'/'.join(s.value for s in statuses)}")


def _transition(ctx, expected, target, message):
    def change(row):
        _expect(row, expected)
        change_status(row, target, message)
    apply(ctx.deployment_id, change)


def _left(ctx):
    return max(1, int(ctx.deadline - time.monotonic()))


def _existing_guest(ctx, d):
    guests = find_guests(ctx, d)
    if len(guests) > 1:
        # Only possible when an earlier run was cut off between two creates: keep one.
        keep = next((g for g in guests if g["vmid"] == d["vm_id"]), guests[0])
        for extra in guests:
            if extra["vmid"] != keep["vmid"]:
                _destroy_guest(ctx, d, extra)
        return keep
    return guests[0] if guests else None


def _choose_node(ctx, d):
    client = ctx.proxmox()
    resources = d["resources"]
    template_node = None
    if d["kind"] == "qemu":
        if not client.settings.vm_template_id:
            raise ProxmoxError("no VM template configured (PROXMOX_VM_TEMPLATE_ID)")
        template_node = client.template_node(client.settings.vm_template_id)
    node = client.choose_node(resources["memory"], resources["disk"], template_node=template_node)
    record(d["id"], "step", f"placed on node {node}")
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


def _create_guest(ctx, d, node):
    """Allocate a VMID and create the guest; collisions (Proxmox's or the database's) retry with a fresh id."""
    client = ctx.proxmox()
    resources = d["resources"]
    tags = [PLATFORM_TAG, d["tag"]]
    tried = set()
    for attempt in range(VMID_ATTEMPTS):
        vmid = _pick_vmid(client, tried)
        tried.add(vmid)
        if not lifecycle.claim_vmid(d["id"], node, vmid):
            ctx.sleep(random.uniform(0.01, 0.1))
            continue  # another deployment holds this VMID in the database
        try:
            if d["kind"] == "lxc":
                upid = client.create_lxc(node, vmid, hostname=d["name"], cores=resources["cores"],
                                         memory=resources["memory"], disk=resources["disk"], tags=tags,
                                         ip_cidr=_static_ip(ctx, d))
            else:
                upid = client.clone_vm(node, vmid, name=d["name"])
        except GuestExists:
            log.info("VMID %s was taken meanwhile; trying another (attempt %d)", vmid, attempt + 1)
            # Not ours: forget it at once, so that nothing later mistakes that guest for this deployment's.
            lifecycle.claim_vmid(d["id"], None, None)
            ctx.sleep(random.uniform(0.05, 0.3))
            continue
        what = "creating container" if d["kind"] == "lxc" else f"cloning template {client.settings.vm_template_id}"
        record(d["id"], "task", f"{what} {vmid} on {node}", upid=upid)
        client.wait_for_task(upid, timeout=min(client.settings.task_timeout, _left(ctx)))
        return vmid
    raise ProxmoxError(f"no free VMID after {VMID_ATTEMPTS} attempts")


def _static_ip(ctx, d):
    """The address from the static pool for this deployment, or None for DHCP."""
    settings = ctx.proxmox().settings
    if not settings.ip_pool:
        return None
    return ippool.allocate(d["id"], settings.ip_pool)


def _configure_vm(ctx, d):
    client = ctx.proxmox()
    resources = d["resources"]
    client.configure_vm(d["node"], d["vm_id"], cores=resources["cores"], memory=resources["memory"],
                        tags=[PLATFORM_TAG, d["tag"]], ip_cidr=_static_ip(ctx, d))
    client.grow_vm_disk(d["node"], d["vm_id"], resources["disk"])
    record(d["id"], "step", f"configured VM {d['vm_id']}: {resources['cores']} cores, "
                            f"{resources['memory']} MB, {resources['disk']} GB disk, cloud-init")


def _start(ctx, d):
    client = ctx.proxmox()
    if client.status(d["node"], d["vm_id"], d["kind"])["status"] != "running":
        upid = client.start(d["node"], d["vm_id"], d["kind"])
        record(d["id"], "task", f"started {d['kind']} {d['vm_id']}", upid=upid)


def _fail(ctx, d, step, exc):
    """Destroy what exists of the guest, then status failed with the step and Proxmox's words."""
    reason = StepFailed(step, exc)
    if isinstance(exc, (ProxmoxError, JobTimeout)):
        log.warning("deployment %s: %s", d["id"], reason)
    else:
        log.exception("deployment %s: unexpected error in step %s", d["id"], step)
    message = str(reason)
    cleanup_error = None
    ctx.deadline = max(ctx.deadline, time.monotonic() + CLEANUP_SECONDS)  # the cleanup gets its own time
    ctx.watch_deletion = False
    current = d
    try:
        current = load(d["id"])
        if ctx.client is not None or _may_have_guest(current):
            guest_hook("destroying", d)
            for guest in find_guests(ctx, current):
                _destroy_guest(ctx, d, guest)
    except LeaseLost:
        raise
    except Exception as cleanup:  # noqa: BLE001
        if _may_have_guest(current):
            # Like StepFailed: an unexpected error is named by its class only (its text may hold anything).
            cleanup_error = (cleanup.describe() if isinstance(cleanup, ProxmoxError)
                             else f"internal error ({cleanup.__class__.__name__})")
            message += f"; the guest could not be removed ({cleanup_error}), reconcile will report it"
        else:
            log.info("deployment %s: no guest was ever asked for; nothing to remove (%s)", d["id"],
                     cleanup.__class__.__name__)

    def to_failed(row):
        if row.status in (S.FAILED, S.DELETED):
            return row.status
        if row.status is S.DELETING:
            raise Cancelled()
        if cleanup_error is None:
            row.ip_address = None
            row.vm_id = None
            row.node = None
            _guest_gone(row)
        change_status(row, S.FAILED, message)
        return S.FAILED

    try:
        result = apply(d["id"], to_failed)
    except Cancelled:
        return destroy(ctx)
    if cleanup_error is None:
        ippool.release(d["id"])
    return result


# -- destroying ------------------------------------------------------------------------------------


def _destroy_guest(ctx, d, guest):
    """Destroy one guest, once any create or clone on it has ended (a failed create removes the guest)."""
    client = ctx.proxmox()
    current = wait_unlocked(ctx, guest["vmid"])
    if current is None:
        record(d["id"], "step", f"{guest['type']} {guest['vmid']} is gone already")
        return
    upid = client.destroy(current["node"], current["vmid"], current["type"])
    record(d["id"], "task", f"destroyed {current['type']} {current['vmid']} on {current['node']}", upid=upid)


def destroy(ctx):
    """Stop and destroy every guest of the deployment, then status deleted. Idempotent."""
    ctx.watch_deletion = False
    ctx.cancelled.clear()
    d = load(ctx.deployment_id)
    if d["status"] is S.DELETED:
        return S.DELETED
    if d["status"] is not S.DELETING:
        _transition(ctx, set(S) - {S.DELETED, S.DELETING}, S.DELETING, "delete requested")
    try:
        if ctx.client is not None or _may_have_guest(d):
            guest_hook("destroying", d)
            for guest in find_guests(ctx, d):
                _destroy_guest(ctx, d, guest)
    except LeaseLost:
        raise
    except Exception as exc:  # noqa: BLE001
        if not _may_have_guest(d):
            # Proxmox is down or gone, but no guest was ever asked for: the delete needs nothing from it.
            log.info("deployment %s: no guest was ever asked for; deleted without Proxmox (%s)", d["id"],
                     exc.__class__.__name__)
            return _mark_deleted(d)
        reason = StepFailed("delete", exc)
        log.warning("deployment %s: %s", d["id"], reason)

        def to_failed(row):
            if row.status is S.DELETING:
                change_status(row, S.FAILED, f"{reason}; delete it again to retry")
        apply(d["id"], to_failed)
        return S.FAILED

    return _mark_deleted(d)


def _may_have_guest(d):
    """Whether a guest of this deployment can exist: every run records its VMID before asking for a guest,
    and forgets it only once that guest is gone (or was never made)."""
    return d["vm_id"] is not None


def _mark_deleted(d):
    def to_deleted(row):
        if row.status is S.DELETED:
            return
        change_status(row, S.DELETED, "guest destroyed" if d["vm_id"] else "deleted")
        row.ip_address = None
        _guest_gone(row)
    apply(d["id"], to_deleted)
    ippool.release(d["id"])
    return S.DELETED


# -- power actions ----------------------------------------------------------------------------------

ACTIONS = {
    # action: (statuses it applies to, status afterwards)
    "start": ({S.STOPPED}, S.RUNNING),
    "stop": ({S.RUNNING}, S.STOPPED),
    "restart": ({S.RUNNING}, S.RUNNING),
}


def power(ctx, action):
    """Start, stop or restart the guest; the status follows. A failed action leaves the status and says why."""
    allowed, after = ACTIONS[action]
    d = load(ctx.deployment_id)
    if d["status"] not in allowed or d["vm_id"] is None:
        record(d["id"], "action", f"{action} skipped: the deployment is {d['status'].value} now")
        return d["status"]
    client = None
    try:
        client = ctx.proxmox()
        if action == "start":
            # The guest gets the deployment's current size first (a resize queued behind this start is moot).
            resources = d["resources"]
            client.set_size(d["node"], d["vm_id"], d["kind"], cores=resources["cores"], memory=resources["memory"])
            client.grow_disk(d["node"], d["vm_id"], d["kind"], resources["disk"])
            upid = client.start(d["node"], d["vm_id"], d["kind"])
            record(d["id"], "task", f"starting {d['kind']} {d['vm_id']}", upid=upid)
            ip = client.guest_ip(d["node"], d["vm_id"], d["kind"], timeout=min(client.settings.ip_timeout,
                                                                                 _left(ctx)))
        elif action == "stop":
            upid = client.shutdown(d["node"], d["vm_id"], d["kind"], timeout=min(60, _left(ctx)))
            record(d["id"], "task", f"shut down {d['kind']} {d['vm_id']}", upid=upid)
            ip = None
        else:
            upid = client.reboot(d["node"], d["vm_id"], d["kind"])
            record(d["id"], "task", f"rebooted {d['kind']} {d['vm_id']}", upid=upid)
            ip = None
    except Cancelled:
        return destroy(ctx)
    except (ProxmoxError, JobTimeout) as exc:
        _note_failure(d["id"], str(StepFailed(action, exc)))
        return d["status"]

    guest_hook({"start": "started", "stop": "stopped", "restart": "restarted"}[action], d)

    def done(row):
        if row.status not in allowed:
            return
        if ip and usable_ipv4(ip, client.settings.loopback_guests):
            row.ip_address = ip
        row.error_message = None
        if after is row.status:
            lifecycle.add_event(row, "action", f"{action}ed {d['kind']} {d['vm_id']}")
        else:
            change_status(row, after, f"{action} done")
    apply(d["id"], done)
    return after


def _note_failure(deployment_id, message):
    """An action that failed leaves the status as it was, with the reason as error and event."""
    def change(row):
        row.error_message = message
        lifecycle.add_event(row, "error", message)
    apply(deployment_id, change)


def finish_after_crash(deployment_id, kind, exc):
    """Last resort when a job died of something unexpected: never leave the row mid-way."""
    message = f"{kind} stopped by an internal error ({exc.__class__.__name__}); see the server log"

    def to_failed(row):
        if row.status in (S.PENDING, S.PROVISIONING, S.DEPLOYING, S.DELETING):
            change_status(row, S.FAILED, message)
    try:
        apply(deployment_id, to_failed)
    except Exception:
        log.exception("could not record the failure of %s on %s", kind, deployment_id)


# -- resizing ---------------------------------------------------------------------------------------


def resize(ctx):
    """Give a stopped guest the deployment's resources (cores, memory; the disk only grows)."""
    d = load(ctx.deployment_id)
    if d["status"] is not S.STOPPED or d["vm_id"] is None:
        record(d["id"], "action", f"resize skipped: the deployment is {d['status'].value} now")
        return d["status"]
    resources = d["resources"]
    try:
        client = ctx.proxmox()
        client.set_size(d["node"], d["vm_id"], d["kind"], cores=resources["cores"], memory=resources["memory"])
        client.grow_disk(d["node"], d["vm_id"], d["kind"], resources["disk"])
    except Cancelled:
        return destroy(ctx)
    except (ProxmoxError, JobTimeout) as exc:
        _note_failure(d["id"], str(StepFailed("resize", exc)))
        return d["status"]
    record(d["id"], "step", f"resized {d['kind']} {d['vm_id']}: {resources['cores']} cores, "
                            f"{resources['memory']} MB, {resources['disk']} GB disk")
    return d["status"]
