"""A deployment made from a backup: the provisioning job restores the archive into a new guest (new VMID, any
node with room, or the one asked for) instead of creating one, and the app the archive holds becomes the new
deployment's first release: same code, packages and data, its own name, address and history."""
import logging

from sqlalchemy import select

from backend.models import Backup, Deployment, Release
from backend.proxmox.errors import ProxmoxError
from backend.services import routing
from backend.services.guests import PLATFORM_TAG
from backend.services.job_context import AppError
from backend.services.lifecycle import record
from backend.services.snapshots import wait_for_answer
from backend.services.transactions import run_in_transaction

log = logging.getLogger(__name__)


def _backup_of(session, deployment_id):
    row = session.get(Deployment, deployment_id)
    backup = session.get(Backup, row.restore_from)
    if backup is None or not backup.volid:
        raise ProxmoxError("the backup to restore is gone")
    source = session.get(Deployment, backup.deployment_id)
    release = session.scalars(select(Release).where(Release.deployment_id == backup.deployment_id,
                                                    Release.version == backup.release_version)).first()
    return {"volid": backup.volid, "storage": backup.storage, "kind": backup.guest_kind, "node": row.node,
            "source": source.name if source else "?", "version": backup.release_version,
            "release": None if release is None else {
                "branch": release.branch, "commit_sha": release.commit_sha, "config": dict(release.config or {}),
                "env_encrypted": release.env_encrypted, "requested_commit": release.requested_commit}}


def choose_node(ctx, deployment):
    """The node asked for (when it is online and has room), else the one with the most free memory and room."""
    client = ctx.proxmox()
    wanted = run_in_transaction(lambda session: _backup_of(session, deployment.id))["node"]
    resources = deployment.resources
    # The node asked for must be online with room, as any placement (choose_node refuses it otherwise).
    node = client.choose_node(resources["memory"], resources["disk"], template_node=wanted or None)
    record(deployment.id, "step", f"placed on node {node}")
    return node


def starter(ctx, deployment):
    """start_restore for provisioning's create loop: the restore task of the backup into (node, vmid)."""
    backup = run_in_transaction(lambda session: _backup_of(session, deployment.id))
    storage = ctx.proxmox().settings.storage

    def start(client, node, vmid, ip_cidr):
        upid = client.restore(node, vmid, deployment.kind, backup["volid"], storage=storage, hostname=deployment.name,
                              ip_cidr=ip_cidr, tags=[PLATFORM_TAG, deployment.tag])
        return upid, f"restoring {backup['volid']} (of {backup['source']}) into {deployment.kind}"
    return start


def adopt_release(ctx, deployment):
    """The restored guest runs the app its archive holds: record it as this deployment's first release (the
    version it had, so that it names its directory on the guest) and check that it answers."""
    backup = run_in_transaction(lambda session: _backup_of(session, deployment.id))
    release = backup["release"]
    if release is None:
        raise AppError(f"the backup holds no release of {backup['source']} to run (none served when it was made)")
    config = release["config"]
    port, path = config.get("port") or 8000, config.get("health_check_path") or "/"
    answer = wait_for_answer(ctx, deployment.address, port, path, ctx.platform.deploy_limits.health_timeout)
    if answer is not True:
        raise AppError(f"the restored app did not answer: GET {path} on port {port} {answer}")
    version = backup["version"]

    def adopt(session):
        row = session.get(Deployment, deployment.id)
        session.add(Release(deployment_id=row.id, version=version, status="live", reason="restore",
                            branch=release["branch"], requested_commit=release["requested_commit"],
                            commit_sha=release["commit_sha"], config=config, env_encrypted=release["env_encrypted"],
                            started_at=row.created_at))
        row.live_release, row.served_port = version, port
        row.restore_from = None  # restored: from now on its releases are built as any other's
    run_in_transaction(adopt)
    record(deployment.id, "step", f"release {version} of {backup['source']} restored from {backup['volid']} "
                                  "answers: it is this deployment's first release")
    routing.sync_quietly(getattr(ctx.platform, "edge", None), "a restore")
