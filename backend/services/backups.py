"""Backups of a deployment's guest: Proxmox vzdump archives on BACKUP_STORAGE, by hand or on a cron schedule,
pruned with Proxmox's own retention options, and restored into a new deployment on any node.

A backup is a row (running, then ok with its volume, or failed with Proxmox's words) and a job that runs the
vzdump task. The list is the rows checked against the storage's content: a volume Proxmox made by itself gets a
row, a row whose volume is gone (pruned, or removed by hand) goes.
"""
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

from croniter import croniter
from sqlalchemy import select, update

from backend.errors import Conflict, DomainError, InvalidState, NotFound
from backend.extensions import db
from backend.models import Backup, Deployment, DeploymentStatus
from backend.models.types import utcnow
from backend.proxmox.errors import ProxmoxError
from backend.services.guests import load_snapshot
from backend.services.lifecycle import add_event, record
from backend.services.transactions import commit, run_in_transaction

log = logging.getLogger(__name__)

HAS_GUEST = (DeploymentStatus.RUNNING, DeploymentStatus.STOPPED, DeploymentStatus.DEPLOYING, DeploymentStatus.FAILED)


def retention(deployment, policy):
    """Proxmox's prune options for the deployment: its own, else the platform's."""
    def pick(own, default):
        return default if own is None else own
    return {"keep-last": pick(deployment.backup_keep_last, policy.keep_last),
            "keep-daily": pick(deployment.backup_keep_daily, policy.keep_daily),
            "keep-weekly": pick(deployment.backup_keep_weekly, policy.keep_weekly)}


def request_backup(deployment, policy, trigger="manual"):
    """A running backup row for a job to carry out; one at a time per deployment."""
    if deployment.is_deleted or deployment.vm_id is None or deployment.status not in HAS_GUEST:
        raise InvalidState(f"a backup needs the deployment's guest; it is {deployment.status.value}",
                           fields={"status": deployment.status.value})
    running = db.session.scalars(select(Backup).where(Backup.deployment_id == deployment.id,
                                                      Backup.state == "running")).first()
    if running is not None:
        raise Conflict(f"a backup of {deployment.name} is running already", fields={"backup": str(running.id)},
                       code="backup_running")
    backup = Backup(deployment_id=deployment.id, state="running", trigger=trigger, node=deployment.node,
                    storage=policy.storage, vm_id=deployment.vm_id, guest_kind=deployment.guest_kind,
                    release_version=deployment.live_release)
    db.session.add(backup)
    add_event(deployment, "action", f"backup requested ({trigger}) to storage {policy.storage}")
    commit()
    return backup


def owner_mark(deployment_id):
    """What the platform writes into an archive's notes: whose it is (a VMID is reused once its guest is gone)."""
    return f"paas-{deployment_id}"


def run_backup(ctx):
    """The backup job: vzdump the guest (mode snapshot, zstd), record the volume, then prune as the deployment's
    retention says. A failure ends the backup failed with Proxmox's words; nothing of it stays on the storage."""
    deployment = load_snapshot(ctx.deployment_id)
    backup_id = run_in_transaction(lambda session: session.scalars(
        select(Backup.id).where(Backup.deployment_id == deployment.id, Backup.state == "running")
        .order_by(Backup.created_at)).first())
    if backup_id is None:
        return deployment.status
    policy = ctx.platform.backups
    ctx.extend(policy.timeout + 120)  # a backup may take longer than a release's time limit
    node, vmid, kind = deployment.node, deployment.vm_id, deployment.kind
    storage = run_in_transaction(lambda session: session.get(Backup, backup_id).storage)
    client, known, started = None, set(), time.time()
    try:
        client = ctx.proxmox()
        known = {entry["volid"] for entry in _listing(client, node, storage, vmid)}
        upid = client.vzdump(node, vmid, storage, notes=owner_mark(deployment.id))
        _set(backup_id, upid=upid, node=node)
        record(deployment.id, "task", f"backup of {kind} {vmid} to {storage}", upid=upid)
        client.wait_for_task(upid, timeout=min(policy.timeout, ctx.whole_seconds_left()))
        made = [e for e in _listing(client, node, storage, vmid) if e["volid"] not in known]
        if not made:
            raise ProxmoxError(f"the backup task ended but no new backup of {vmid} is on {storage}")
        volume = max(made, key=lambda e: e.get("ctime") or 0)
    except Exception as exc:
        words = exc.describe() if isinstance(exc, ProxmoxError) else f"internal error ({exc.__class__.__name__})"
        if not isinstance(exc, ProxmoxError):
            log.exception("backup of %s", deployment.id)
        if client is not None:
            _remove_leftovers(client, node, storage, vmid, known, started)
        _set(backup_id, state="failed", error=words, finished_at=utcnow())
        record(deployment.id, "error", f"backup failed: {words}")
        return deployment.status
    _set(backup_id, state="ok", volid=volume["volid"], size=volume.get("size"), finished_at=utcnow())
    _drop_found_twin(deployment.id, backup_id, volume["volid"])
    record(deployment.id, "step", f"backup {volume['volid']} made ({_size(volume.get('size'))} in "
                                  f"{time.time() - started:.1f} s)")
    keep = run_in_transaction(lambda session: retention(session.get(Deployment, deployment.id), policy))
    try:
        removed = _prune(client, deployment, storage, keep)
        if removed:
            record(deployment.id, "step", f"retention ({_keep_text(keep)}) removed {removed} older backup(s)")
    except ProxmoxError as exc:
        record(deployment.id, "error", f"retention ({_keep_text(keep)}) failed: {exc.describe()}")
    return deployment.status


def _prune(client, deployment, storage, keep):
    """Proxmox's own prune selection (its dry run), carried out on this deployment's archives only: an archive of
    another deployment that once had the same VMID is never removed. Returns how many went."""
    node, vmid, kind = deployment.node, deployment.vm_id, deployment.kind
    ours = run_in_transaction(lambda session: set(session.scalars(
        select(Backup.volid).where(Backup.deployment_id == deployment.id, Backup.volid.is_not(None)))))
    plan = client.prune_plan(node, storage, vmid, kind, keep)
    doomed = [entry["volid"] for entry in plan if entry.get("mark") == "remove" and entry.get("volid") in ours]
    for volid in doomed:
        client.delete_volume(node, storage, volid)
    _forget_vanished(deployment.id, storage, {e["volid"] for e in _listing(client, node, storage, vmid)})
    return len(doomed)


def _drop_found_twin(deployment_id, backup_id, volid):
    """A listing that ran while this backup did may have adopted its volume as found: one row per volume."""
    def change(session):
        for twin in session.scalars(select(Backup).where(Backup.deployment_id == deployment_id, Backup.volid == volid,
                                                         Backup.id != backup_id)):
            session.delete(twin)
    run_in_transaction(change)


def _listing(client, node, storage, vmid):
    return [e for e in client.backups(node, storage, vmid) if e.get("vmid") in (vmid, str(vmid))]


def _remove_leftovers(client, node, storage, vmid, known, started):
    """A failed vzdump's partial archive, if Proxmox left one."""
    try:
        for entry in _listing(client, node, storage, vmid):
            if entry["volid"] not in known and (entry.get("ctime") or 0) >= started - 5:
                client.delete_volume(node, storage, entry["volid"])
    except ProxmoxError as exc:
        log.warning("could not look for a failed backup's leftovers of %s: %s", vmid, exc.describe())


def _set(backup_id, **fields):
    def change(session):
        backup = session.get(Backup, backup_id)
        for key, value in fields.items():
            setattr(backup, key, value)
    run_in_transaction(change)


def _forget_vanished(deployment_id, storage, present):
    """Rows of finished backups whose volume is no longer on the storage go; how many."""
    def change(session):
        gone = session.scalars(select(Backup).where(Backup.deployment_id == deployment_id, Backup.state == "ok",
                                                    Backup.storage == storage)).all()
        gone = [b for b in gone if b.volid not in present]
        for backup in gone:
            session.delete(backup)
        return len(gone)
    return run_in_transaction(change)


def _keep_text(keep):
    return ", ".join(f"{key}={value}" for key, value in keep.items())


def _size(size):
    if not size:
        return "size unknown"
    return f"{size / 2**20:.1f} MiB"


# -- for requests ------------------------------------------------------------------------------------------


def list_backups(deployment, client, policy):
    """The deployment's backups, newest first, checked against the storage when Proxmox answers (a volume no
    row knows gets one; a row whose volume is gone goes). Returns (backups, whether the storage was read)."""
    checked = False
    # A deleted deployment's VMID may be another's now: its list is the platform's record alone.
    if client is not None and deployment.vm_id is not None and deployment.node and not deployment.is_deleted:
        try:
            entries = _listing(client, deployment.node, policy.storage, deployment.vm_id)
            checked = True
        except ProxmoxError as exc:
            log.info("backups of %s: storage not read (%s)", deployment.id, exc.describe())
        if checked:
            present = {e["volid"] for e in entries}
            known = Backup.of_deployment(deployment.id)
            rows = {b.volid for b in known if b.volid}
            # While a backup runs, a new volume may be its own, not yet recorded: adopt none until it ends.
            adopting = not any(b.state == "running" for b in known)
            mark = owner_mark(deployment.id)
            for entry in entries:
                # Only archives that say they are this deployment's (an archive of the same VMID may be another's).
                if adopting and entry["volid"] not in rows and mark in str(entry.get("notes") or ""):
                    db.session.add(Backup(deployment_id=deployment.id, state="ok", trigger="found",
                                          node=deployment.node, storage=policy.storage, vm_id=deployment.vm_id,
                                          guest_kind=deployment.guest_kind, volid=entry["volid"],
                                          size=entry.get("size"), created_at=_time(entry.get("ctime")),
                                          finished_at=_time(entry.get("ctime"))))
            for backup in Backup.of_deployment(deployment.id):
                if backup.state == "ok" and backup.storage == policy.storage and backup.volid not in present:
                    db.session.delete(backup)
            commit()
    return Backup.of_deployment(deployment.id), checked


def _time(ctime):
    return datetime.fromtimestamp(int(ctime), UTC) if ctime else utcnow()


def find_backup(deployment, backup_id):
    try:
        key = uuid.UUID(str(backup_id))
    except ValueError:
        key = None
    backup = db.session.get(Backup, key) if key else None
    if backup is None or backup.deployment_id != deployment.id:
        raise NotFound(f"{deployment.name} has no backup {str(backup_id)[:80]!r}", fields={"backup": "unknown"})
    return backup


def delete_backup(deployment, backup, client):
    """Remove the backup's volume from the storage, then its row; a running one cannot be removed."""
    if backup.state == "running":
        raise Conflict("the backup is still running", fields={"backup": "running"}, code="backup_running")
    if backup.volid:
        try:
            client.delete_volume(backup.node or deployment.node, backup.storage, backup.volid)
        except ProxmoxError as exc:
            words = exc.describe()
            if "does not exist" not in words and "can't find" not in words and "no such" not in words.lower():
                raise DomainError(f"Proxmox did not remove {backup.volid}: {words}", code="proxmox_error",
                                  status=502) from None
    db.session.delete(backup)
    add_event(deployment, "action", f"backup {backup.volid or backup.id} deleted")
    commit()


# -- schedules ---------------------------------------------------------------------------------------------


def due_schedules(now=None):
    """The deployments whose backup schedule has fired since it last ran (or since they were made)."""
    now = now or utcnow()
    rows = db.session.execute(select(Deployment.id, Deployment.backup_schedule, Deployment.backup_scheduled_at,
                                     Deployment.created_at)
                              .where(Deployment.deleted_at.is_(None), Deployment.backup_schedule.is_not(None),
                                     Deployment.vm_id.is_not(None))).all()
    due = []
    for row in rows:
        since = row.backup_scheduled_at or row.created_at
        if croniter(row.backup_schedule, since).get_next(datetime) <= now:
            due.append((row.id, row.backup_scheduled_at))
    return due


def claim_scheduled_run(deployment_id, seen, now=None):
    """Whether this process runs the schedule now: the first to move backup_scheduled_at from what it saw."""
    column = Deployment.backup_scheduled_at
    condition = column.is_(None) if seen is None else column == seen
    result = db.session.execute(update(Deployment).where(Deployment.id == deployment_id, condition)
                                .values(backup_scheduled_at=now or utcnow()))
    db.session.commit()
    return result.rowcount == 1


# -- restoring into a new deployment -------------------------------------------------------------------------

COPIED = ("framework", "github_url", "branch", "build_command", "start_command", "release_command", "port",
          "health_check_path")


def request_restore_into(source, backup, name, node, owner, quota_defaults, *, proxmox, audit=None):
    """A new deployment (pending) made from the backup: its own name, guest, address and release history; the
    source's settings and environment. The provisioning job restores the archive instead of creating a guest."""
    from backend.services import deployments  # noqa: PLC0415 - deployments imports nothing of backups; this keeps it so

    if backup.state != "ok" or not backup.volid:
        raise Conflict(f"backup {backup.id} is {backup.state}: only a finished backup can be restored",
                       fields={"backup": backup.state}, code="backup_not_ready")
    if backup.release_version is None:
        raise Conflict("this backup holds no release the platform knows (it was made outside the platform, or before "
                       "a release served): nothing to run from it", fields={"backup": "no release"},
                       code="backup_without_release")
    data = {"name": name, "deployment_type": source.deployment_type, "resources": dict(source.resources),
            "tags": list(source.tags or []), **{key: getattr(source, key) for key in COPIED}}
    extra = {"restore_from": backup.id, "node": node, "env_encrypted": source.env_encrypted,
             "snapshot_before_release": source.snapshot_before_release}
    return deployments.create_deployment(data, owner, quota_defaults, audit, proxmox=proxmox, extra=extra,
                                         created=f"created from backup {backup.volid} of {source.name}")


def fail_stale(policy, now=None):
    """Backups still running long after any task could have (their job died, or was never queued): failed, so
    that the next one may run. Returns how many."""
    cutoff = (now or utcnow()) - timedelta(seconds=policy.timeout + 600)
    stale = db.session.scalars(select(Backup).where(Backup.state == "running", Backup.created_at < cutoff)).all()
    for backup in stale:
        backup.state, backup.finished_at = "failed", utcnow()
        backup.error = "its job ended without a result (the process stopped, or the job was never queued)"
    db.session.commit()
    return len(stale)


def fail_unqueued(backup_id, reason):
    """The backup's job could not be queued: say so on it instead of leaving it running."""
    backup = db.session.get(Backup, backup_id)
    if backup is not None and backup.state == "running":
        backup.state, backup.error, backup.finished_at = "failed", f"could not queue the job: {reason}", utcnow()
        db.session.commit()
