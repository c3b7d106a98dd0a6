"""Compare the database with the cluster: platform guests nobody owns, and deployments whose guest is gone."""
import re
import uuid
from dataclasses import dataclass, field

from sqlalchemy import select

from backend.extensions import db
from backend.models import Deployment, DeploymentStatus
from backend.proxmox.errors import ProxmoxError
from backend.services.guests import PLATFORM_TAG
from backend.services.lifecycle import add_event, apply, change_status

TAG_RE = re.compile(r"paas-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
# Rows a job is working on: their guest may legitimately be missing or not yet tagged.
IN_FLIGHT = {DeploymentStatus.PENDING, DeploymentStatus.PROVISIONING, DeploymentStatus.DELETING}
# Rows that must have a guest.
NEED_GUEST = {DeploymentStatus.DEPLOYING, DeploymentStatus.RUNNING, DeploymentStatus.STOPPED}


@dataclass
class Report:
    orphans: list = field(default_factory=list)  # guests: {vmid, node, type, name, deployment_id, reason}
    missing: list = field(default_factory=list)  # deployments: {id, name, status, vm_id, node}
    destroyed: list = field(default_factory=list)
    marked: list = field(default_factory=list)
    errors: list = field(default_factory=list)

    @property
    def clean(self):
        return not (self.orphans or self.missing or self.errors)


def _kept_on_purpose(row, guest):
    """A failed deployment whose release served keeps its guest on purpose: a redeploy goes onto it."""
    return row.vm_id == guest["vmid"] and row.live_release is not None


def _owner(guest):
    for tag in guest["tags"]:
        match = TAG_RE.fullmatch(tag)
        if match:
            return uuid.UUID(match.group(1))
    return None


def _forget_guest(deployment_id, vmid):
    def change(row):
        if row.vm_id == vmid:
            row.vm_id = row.node = row.ip_address = None
            add_event(row, "step", f"guest {vmid} destroyed by reconcile")
    apply(deployment_id, change)


def reconcile(client, fix=False):
    """Report (and with fix: destroy orphans, fail rows without a guest) against client, a Proxmox client
    (the platform's, or a fake). Returns a Report."""
    report = Report()
    guests = [g for g in client.guests() if not g["template"]]
    rows = {row.id: row for row in db.session.scalars(select(Deployment))}
    by_vmid = {g["vmid"]: g for g in guests}

    for guest in guests:
        owner = _owner(guest)
        if owner is None and PLATFORM_TAG not in guest["tags"]:
            continue  # not ours: never touched
        row = rows.get(owner) if owner else None
        reason = None
        if owner is None:
            reason = "tagged paas but names no deployment"
        elif row is None:
            reason = "its deployment is not in the database"
        elif row.is_deleted:
            reason = f"its deployment {row.name} is deleted"
        elif row.status is DeploymentStatus.FAILED and not _kept_on_purpose(row, guest):
            reason = f"its deployment {row.name} failed and the guest was left behind"
        elif row.status not in IN_FLIGHT and row.vm_id != guest["vmid"]:
            reason = f"its deployment {row.name} uses VMID {row.vm_id} instead"
        if reason:
            report.orphans.append({"vmid": guest["vmid"], "node": guest["node"], "type": guest["type"],
                                   "name": guest["name"], "deployment_id": str(owner) if owner else None,
                                   "reason": reason})

    for row in rows.values():
        if row.is_deleted or row.status not in NEED_GUEST:
            continue
        guest = by_vmid.get(row.vm_id) if row.vm_id else None
        if guest is None or _owner(guest) not in (row.id, None):
            report.missing.append({"id": str(row.id), "name": row.name, "status": row.status.value,
                                   "vm_id": row.vm_id, "node": row.node})
    db.session.rollback()

    if fix:
        for orphan in report.orphans:
            try:
                client.destroy(orphan["node"], orphan["vmid"], orphan["type"])
                report.destroyed.append(orphan["vmid"])
                owner = rows.get(uuid.UUID(orphan["deployment_id"])) if orphan["deployment_id"] else None
                if owner is not None and owner.vm_id == orphan["vmid"]:
                    _forget_guest(owner.id, orphan["vmid"])
            except ProxmoxError as exc:
                report.errors.append(f"could not destroy {orphan['type']} {orphan['vmid']}: {exc.describe()}")
        for missing in report.missing:
            message = f"guest {missing['vm_id']} is gone from the cluster (found by reconcile)"

            def mark(row, message=message):
                if row.status in NEED_GUEST:
                    row.ip_address = None
                    change_status(row, DeploymentStatus.FAILED, message)
            apply(uuid.UUID(missing["id"]), mark)
            report.marked.append(missing["id"])
    return report
