"""A deployment's guest as the jobs see it: a snapshot of the row, finding the guest, reaching it.

A job reads the row into a DeploymentSnapshot (plain values: no ORM object outlives its session),
finds its guest on the cluster by tag or recorded VMID, and reaches it through the platform's
transport factory with a GuestTarget (the deploy adapter never looks a deployment up).
"""
import logging
import time
from dataclasses import dataclass

from backend.deploy.guests import GuestTarget
from backend.models import Deployment, DeploymentStatus
from backend.proxmox.errors import ProxmoxTimeout
from backend.services.lifecycle import apply, record
from backend.services.transactions import run_in_transaction

log = logging.getLogger(__name__)

PLATFORM_TAG = "paas"
# Locks under which a guest is still being made: its name and tags are not written yet.
BEING_MADE = ("create", "clone")


@dataclass(frozen=True)
class DeploymentSnapshot:
    """The plain values of a deployment a job needs, read in one transaction."""

    id: object
    name: str
    status: DeploymentStatus
    kind: str  # the guest's kind at Proxmox: "lxc" or "qemu"
    tag: str
    resources: dict
    node: str | None
    vm_id: int | None
    address: str | None
    framework: str | None
    restore_from: object = None  # a backup's id: the guest is restored from it instead of made

    @classmethod
    def of(cls, deployment):
        return cls(id=deployment.id, name=deployment.name, status=deployment.status, kind=deployment.guest_kind,
                   tag=deployment.guest_tag, resources=dict(deployment.resources), node=deployment.node,
                   vm_id=deployment.vm_id, address=deployment.ip_address, framework=deployment.framework,
                   restore_from=deployment.restore_from)

    @property
    def may_have_guest(self):
        """Whether a guest of this deployment can exist: every run records its VMID before asking for a
        guest, and forgets it only once that guest is gone (or was never made)."""
        return self.vm_id is not None


def load_snapshot(deployment_id):
    return apply(deployment_id, DeploymentSnapshot.of)


class DeploymentHostKeys:
    """A deployment's pinned SSH host key, kept on its row (the transport's HostKeyStore)."""

    def __init__(self, deployment_id):
        self.deployment_id = deployment_id

    def known(self):
        return run_in_transaction(lambda session: session.get(Deployment, self.deployment_id).ssh_host_key)

    def remember(self, line):
        def change(row):
            row.ssh_host_key = line
        apply(self.deployment_id, change)


def guest_target(deployment):
    """How to reach the deployment's guest (a snapshot or a row)."""
    if isinstance(deployment, DeploymentSnapshot):
        return GuestTarget(str(deployment.id), deployment.address, deployment.kind, DeploymentHostKeys(deployment.id))
    return GuestTarget(str(deployment.id), deployment.ip_address, deployment.guest_kind,
                       DeploymentHostKeys(deployment.id))


def tell_guest_hooks(ctx, event, deployment):
    """Tell the platform what happened to a guest (a simulated guest's app follows its guest)."""
    hooks = ctx.platform.guest_hooks if ctx.platform is not None else None
    if hooks is None:
        return
    try:
        getattr(hooks, event)(guest_target(deployment))
    except Exception:
        log.exception("guest hook %s failed for %s", event, deployment.id)


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
        tagged = deployment.tag in guest["tags"]
        at_vmid = guest["vmid"] == deployment.vm_id
        recorded = at_vmid and (guest["name"] == deployment.name
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


def destroy_guest(ctx, deployment, guest):
    """Destroy one guest, once any create or clone on it has ended (a failed create removes the guest)."""
    client = ctx.proxmox()
    current = wait_unlocked(ctx, guest["vmid"])
    if current is None:
        record(deployment.id, "step", f"{guest['type']} {guest['vmid']} is gone already")
        return
    upid = client.destroy(current["node"], current["vmid"], current["type"])
    record(deployment.id, "task", f"destroyed {current['type']} {current['vmid']} on {current['node']}", upid=upid)
