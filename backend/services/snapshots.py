"""Proxmox snapshots around releases, and going back to one.

Before a release replaces the live one, the guest is snapshotted as the live release left it (code, OS packages
and the app's data on the guest's disk together) and the snapshot is recorded on that release: restoring
release N brings the guest back as release N left it. The newest SNAPSHOTS_KEPT are kept. A restore is a job:
the guest is rolled back (it stops and starts for it), the app is health-checked, and the status and the
release history say what happened.
"""
import logging
import re
import time

from sqlalchemy import select
from sqlalchemy.orm import object_session

from backend.deploy.deployer import probe
from backend.errors import Conflict, InvalidState, NotFound
from backend.extensions import db
from backend.models import Deployment, DeploymentStatus, Release
from backend.proxmox.errors import ProxmoxError
from backend.services import routing
from backend.services.guests import load_snapshot
from backend.services.job_context import StepFailed, Superseded, transition
from backend.services.lifecycle import add_event, apply, change_status, record
from backend.services.transactions import commit, run_in_transaction

log = logging.getLogger(__name__)

PREFIX = "paas_release_"
NAME_RE = re.compile(PREFIX + r"(\d{1,9})")
RESTORABLE = (DeploymentStatus.RUNNING, DeploymentStatus.STOPPED, DeploymentStatus.FAILED)


# The storage types that snapshot a guest's root disk (a qcow2 file on dir or NFS can too; those are VM disks only).
SNAPSHOT_STORAGE_TYPES = ("lvmthin", "zfspool", "rbd", "btrfs", "cephfs")


def check_storage(deployment, client):
    """Refuse snapshots for a guest whose root disk is on a storage that cannot take them (409, naming it). A
    Proxmox that does not answer refuses nothing here: the first release's snapshot says what it says."""
    if deployment.vm_id is None or not deployment.node:
        return
    try:
        storage, kind = client.root_disk_storage(deployment.node, deployment.vm_id, deployment.guest_kind)
    except ProxmoxError as exc:
        log.info("storage of %s not checked: %s", deployment.id, exc.describe())
        return
    if kind is not None and kind not in SNAPSHOT_STORAGE_TYPES:
        raise Conflict(f"the guest's disk is on storage '{storage}' ({kind}), which cannot take snapshots; move it "
                       f"to one that can ({', '.join(SNAPSHOT_STORAGE_TYPES)}) or leave snapshot_before_release off",
                       fields={"snapshot_before_release": f"storage {storage} cannot snapshot"},
                       code="snapshot_unsupported")


class SnapshotFailed(Exception):
    """The snapshot before a release failed: the release does not start, and the live one keeps serving."""


def snapshot_name(version):
    """The Proxmox snapshot of a release (a pve-configid: letters, digits and '_')."""
    return f"{PREFIX}{version}"


def wanted(deployment, policy):
    """Whether releases of this deployment take a snapshot first (its own setting, else the platform's)."""
    own = deployment.snapshot_before_release
    return policy.snapshot_default if own is None else bool(own)


def snapshot_live_release(ctx, deployment, live_version, next_version, log_step):
    """Snapshot the guest as release live_version left it, before next_version replaces it; record it on the
    release and keep the newest SNAPSHOTS_KEPT. Raises SnapshotFailed with Proxmox's words."""
    client = ctx.proxmox()
    node, vmid, kind = deployment.node, deployment.vm_id, deployment.kind
    name = snapshot_name(live_version)
    log_step(f"snapshot of the guest as release {live_version} left it ({name})")
    started = time.monotonic()
    try:
        if any(s.get("name") == name for s in client.snapshots(node, vmid, kind)):
            # A release that failed after the last snapshot left the live one as it was: take it anew.
            client.delete_snapshot(node, vmid, kind, name)
            _remember(deployment.id, live_version, None)
        upid = client.snapshot(node, vmid, kind, name,
                               description=f"{deployment.name}: release {live_version}, before release {next_version}")
    except ProxmoxError as exc:
        raise SnapshotFailed(f"the snapshot before release {next_version} failed: {exc.describe()}"
                             f"{_storage_words(client, deployment)}") from None
    record(deployment.id, "task", f"snapshot {name} of {kind} {vmid}", upid=upid)
    _remember(deployment.id, live_version, name)
    elapsed = time.monotonic() - started
    try:
        prune(ctx, deployment, ctx.platform.backups.snapshots_kept)
    except ProxmoxError as exc:  # the snapshot is taken; older ones go at the next release
        record(deployment.id, "error", f"older snapshots not pruned: {exc.describe()}")
    return name, elapsed


def _remember(deployment_id, version, name):
    def change(session):
        release = session.scalars(select(Release).where(Release.deployment_id == deployment_id,
                                                        Release.version == version)).first()
        if release is not None:
            release.snapshot = name
    run_in_transaction(change)


def _storage_words(client, deployment):
    """Which storage the guest's disk is on, for a snapshot's failure (Proxmox's own words do not say)."""
    try:
        storage, kind = client.root_disk_storage(deployment.node, deployment.vm_id, deployment.kind)
    except ProxmoxError:
        return ""
    able = "" if kind in SNAPSHOT_STORAGE_TYPES else ", which cannot take snapshots"
    return f" (the guest's disk is on storage '{storage}' ({kind}){able})"


def prune(ctx, deployment, kept):
    """Delete the platform's snapshots of the guest but the newest `kept` (the releases forget them too)."""
    client = ctx.proxmox()
    node, vmid, kind = deployment.node, deployment.vm_id, deployment.kind
    ours = sorted((int(m.group(1)), s["name"]) for s in client.snapshots(node, vmid, kind)
                  if (m := NAME_RE.fullmatch(str(s.get("name")))))
    old = ours[:-kept] if kept else ours
    for version, name in old:
        try:
            client.delete_snapshot(node, vmid, kind, name)
        except ProxmoxError as exc:
            log.warning("could not delete snapshot %s of %s: %s", name, vmid, exc.describe())
            continue

        def forget(session, version=version):
            release = session.scalars(select(Release).where(Release.deployment_id == deployment.id,
                                                            Release.version == version)).first()
            if release is not None:
                release.snapshot = None
        run_in_transaction(forget)
        record(deployment.id, "step", f"snapshot {name} deleted (SNAPSHOTS_KEPT={kept})")


# -- restoring --------------------------------------------------------------------------------------------


def request_restore(deployment, version):
    """Check that the guest can go back to release `version`'s snapshot and record the request (a job does it)."""
    release = Release.get(deployment.id, version)
    if release is None:
        raise NotFound(f"{deployment.name} has no release {version}", fields={"version": "unknown"})
    if deployment.is_deleted or deployment.status not in RESTORABLE or deployment.vm_id is None:
        raise InvalidState(f"a restore needs the deployment's guest; it is {deployment.status.value}",
                           fields={"status": deployment.status.value})
    if not release.snapshot:
        raise Conflict(f"release {version} has no snapshot (snapshots are taken before a release replaces a live "
                       "one, when snapshot_before_release is on; the newest SNAPSHOTS_KEPT are kept)",
                       fields={"version": "no snapshot"}, code="no_snapshot")
    if deployment.pending_restore:
        raise Conflict("a restore is on its way already", fields={"version": "restore in progress"},
                       code="restore_in_progress")
    if db.session.scalars(select(Release.id).where(Release.deployment_id == deployment.id,
                                                   Release.status.in_(("queued", "building")))).first():
        raise Conflict("a release is on its way: restore once it has ended", fields={"version": "release running"},
                       code="release_in_progress")
    deployment.pending_restore = f"release:{version}"
    add_event(deployment, "action", f"restore to release {version}'s snapshot ({release.snapshot}) requested")
    commit()
    return release


def restore(ctx):
    """The restore job: roll the guest back to the snapshot asked for, check the app, record the outcome.

    A rollback Proxmox refuses (a lock, a snapshot that is not the newest on ZFS) changes nothing: an error event,
    the status as it was. Once the guest was rolled back the status is deploying until the app answers (running)
    or does not (failed, the guest kept). A resumed run (the job died) rolls back again: the same end state."""
    deployment = load_snapshot(ctx.deployment_id)
    row_target = run_in_transaction(lambda session: session.get(Deployment, deployment.id).pending_restore)
    if not row_target or not row_target.startswith("release:"):
        record(deployment.id, "action", "restore skipped: nothing asked for")
        return deployment.status
    version = int(row_target.split(":", 1)[1])
    release = run_in_transaction(lambda session: _release_values(session, deployment.id, version))
    if release is None or not release["snapshot"]:
        return _clear(deployment, f"restore to release {version} skipped: it has no snapshot any more")
    if deployment.status not in (*RESTORABLE, DeploymentStatus.DEPLOYING) or deployment.vm_id is None:
        return _clear(deployment, f"restore to release {version} skipped: the deployment is "
                                  f"{deployment.status.value}")
    client = ctx.proxmox()
    node, vmid, kind = deployment.node, deployment.vm_id, deployment.kind
    try:
        upid = client.rollback(node, vmid, kind, release["snapshot"], start=True)
    except ProxmoxError as exc:
        return _clear(deployment, f"restore to release {version} refused by Proxmox, nothing changed: "
                                  f"{exc.describe()}", kind="error")
    record(deployment.id, "task", f"rolled {kind} {vmid} back to {release['snapshot']}", upid=upid)
    if deployment.status is not DeploymentStatus.DEPLOYING:
        try:
            transition(ctx, set(RESTORABLE), DeploymentStatus.DEPLOYING,
                       f"guest rolled back to release {version}'s snapshot {release['snapshot']}; checking the app")
        except Superseded as exc:  # a delete (or another change) came first: it wins
            return _clear(deployment, f"restore to release {version} stopped: {exc}")
    step = "address"
    try:
        address = client.guest_ip(node, vmid, kind, timeout=min(client.settings.ip_timeout, ctx.whole_seconds_left()))
        step = "health check"
        port, path = release["port"], release["health_check_path"]
        answer = wait_for_answer(ctx, address, port, path, ctx.platform.deploy_limits.health_timeout)
        if answer is not True:
            raise RestoreCheckFailed(f"GET {path} on port {port} {answer}")
    except Exception as exc:  # noqa: BLE001 - every failure ends in status failed, with its reason; the guest stays
        message = f"{StepFailed(f'restore ({step})', exc)}"
        log.warning("deployment %s: %s", deployment.id, message)

        def to_failed(row):
            row.pending_restore = None
            if row.status is DeploymentStatus.DEPLOYING:
                change_status(row, DeploymentStatus.FAILED, message)
            return row.status
        return apply(deployment.id, to_failed)

    def to_running(row):
        row.pending_restore = None
        row.ip_address = address
        row.live_release, row.served_port = version, port
        session = object_session(row)
        for other in session.scalars(select(Release).where(Release.deployment_id == row.id,
                                                           Release.status == "live")):
            other.status = "superseded"
        target = session.scalars(select(Release).where(Release.deployment_id == row.id,
                                                        Release.version == version)).first()
        target.status = "live"
        if row.status is DeploymentStatus.DEPLOYING:
            change_status(row, DeploymentStatus.RUNNING,
                          f"restored to release {version}'s snapshot {release['snapshot']}: its code, OS packages "
                          "and data; the app answers")
        return row.status
    status = apply(deployment.id, to_running)
    routing.sync_quietly(getattr(ctx.platform, "edge", None), "a restore")
    return status


class RestoreCheckFailed(Exception):
    """The guest came back from its snapshot, but the app did not answer."""


def _release_values(session, deployment_id, version):
    release = session.scalars(select(Release).where(Release.deployment_id == deployment_id,
                                                    Release.version == version)).first()
    if release is None:
        return None
    config = release.config or {}
    return {"snapshot": release.snapshot, "port": config.get("port") or 8000,
            "health_check_path": config.get("health_check_path") or "/"}


def _clear(deployment, message, kind="action"):
    def change(row):
        row.pending_restore = None
        add_event(row, kind, message)
        return row.status
    return apply(deployment.id, change)


def wait_for_answer(ctx, address, port, path, timeout):
    """True once GET path answers 2xx/3xx within timeout, else the last reason."""
    deadline = time.monotonic() + timeout
    last = "gave no answer"
    while time.monotonic() < deadline:
        status = probe(address, port, path)
        if isinstance(status, int) and 200 <= status < 400:
            return True
        last = f"answered {status}" if isinstance(status, int) else status
        ctx.sleep(0.5)
    return f"{last} within {timeout:g} s"
