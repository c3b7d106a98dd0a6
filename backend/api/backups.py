"""Snapshots and backups: /api/deployments/<ident>/releases/<version>/restore and /backups."""
import time

from spectree import Response

from backend.api import api_bp
from backend.api.auth import audit_action, audit_in_transaction, caller, quota_defaults
from backend.api.deployments import find
from backend.api.releases import release_envelope, release_of
from backend.api.spec import spec
from backend.errors import DomainError
from backend.handoff import enqueue
from backend.platform import platform_of
from backend.schemas.backups import BackupEnvelope, BackupList, BackupOut, DeploymentCreated, RestoreBackupIn
from backend.schemas.common import ErrorResponse, dump
from backend.schemas.releases import ReleaseEnvelope
from backend.services import backups, snapshots
from backend.services.cluster import require_proxmox

TAGS = ["backups"]


@api_bp.post("/deployments/<ident>/releases/<version>/restore")
@spec.validate(resp=Response(HTTP_202=ReleaseEnvelope, HTTP_404=ErrorResponse, HTTP_409=ErrorResponse), tags=TAGS)
def restore_release(ident, version):
    """Roll the whole guest back to the snapshot of that release (its code, OS packages and the data on the
    guest's disk together, as the release left them), then health-check the app; a job does it (202), and the
    status and the release history say what happened. 409 no_snapshot when the release has none."""
    deployment = find(ident)
    require_proxmox(platform_of().proxmox)
    release = snapshots.request_restore(deployment, release_of(deployment, version).version)
    audit_action("deployment.restore", deployment, release=release.version, snapshot=release.snapshot)
    enqueue("restore", deployment)
    return release_envelope(release, deployment)


@api_bp.post("/deployments/<ident>/backups")
@spec.validate(resp=Response(HTTP_202=BackupEnvelope, HTTP_404=ErrorResponse, HTTP_409=ErrorResponse), tags=TAGS)
def create_backup(ident):
    """Back the guest up now: a vzdump (mode snapshot, zstd) to BACKUP_STORAGE, then the deployment's retention.
    A job does it (202); the backup's state follows (running, ok or failed with Proxmox's words)."""
    deployment = find(ident)
    require_proxmox(platform_of().proxmox)
    backup = backups.request_backup(deployment, platform_of().backups)
    body = dump(BackupOut, backup)
    audit_action("deployment.backup", deployment, backup=body["id"])
    try:
        enqueue("backup", deployment)
    except DomainError as exc:
        backups.fail_unqueued(backup.id, exc.message)
        raise
    return {"success": True, "backup": body}, 202


@api_bp.get("/deployments/<ident>/backups")
@spec.validate(resp=Response(HTTP_200=BackupList, HTTP_404=ErrorResponse), tags=TAGS)
def list_backups(ident):
    """The guest's backups, newest first, checked against the storage's content when Proxmox answers."""
    deployment = find(ident)
    proxmox = platform_of().proxmox
    client = proxmox.quick_client() if proxmox is not None else None
    found, checked = backups.list_backups(deployment, client, platform_of().backups)
    return {"success": True, "backups": [dump(BackupOut, b) for b in found], "storage_checked": checked}


@api_bp.delete("/deployments/<ident>/backups/<backup_id>")
@spec.validate(resp=Response(HTTP_204=None, HTTP_404=ErrorResponse, HTTP_409=ErrorResponse), tags=TAGS)
def delete_backup(ident, backup_id):
    """Remove the backup's archive from the storage, and the backup."""
    deployment = find(ident)
    proxmox = platform_of().proxmox
    require_proxmox(proxmox)
    backup = backups.find_backup(deployment, backup_id)
    volid = backup.volid
    backups.delete_backup(deployment, backup, proxmox.job_client(time.sleep))
    audit_action("deployment.backup.delete", deployment, volid=volid)
    return "", 204


@api_bp.post("/deployments/<ident>/backups/<backup_id>/restore")
@spec.validate(resp=Response(HTTP_202=DeploymentCreated, HTTP_404=ErrorResponse, HTTP_409=ErrorResponse,
                             HTTP_422=ErrorResponse), tags=TAGS)
def restore_backup(ident, backup_id, json: RestoreBackupIn):
    """Restore the backup into a new deployment (new VMID, on the node asked for or any with room): its own name,
    address and release history, the source's settings and environment; it runs once the app answers (202, then
    follow the new deployment's status). The caller's quota applies."""
    deployment = find(ident)
    backup = backups.find_backup(deployment, backup_id)
    created = backups.request_restore_into(
        deployment, backup, json.name, json.node, caller(), quota_defaults(), proxmox=platform_of().proxmox,
        audit=lambda new: audit_in_transaction("deployment.restore_backup", new, source=deployment.name,
                                               volid=backup.volid))
    enqueue("provision", created)
    return {"success": True, "deployment": created.to_dict()}, 202
