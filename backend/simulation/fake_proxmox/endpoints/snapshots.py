"""A guest's snapshots: GET and POST /nodes/{node}/{kind}/{vmid}/snapshot, DELETE .../snapshot/{snapname} and
POST .../snapshot/{snapname}/rollback.

As pve-guest-common's PVE::AbstractConfig does it: a snapshot keeps a copy of the config (less its description)
whose `parent` is the snapshot before it, and the config's own `parent` names the latest snapshot taken or rolled
back to. Each action is a task (vzsnapshot, vzdelsnapshot, vzrollback; qmsnapshot, qmdelsnapshot, qmrollback)
and the server's refusals are the task's failure, not the request's: a template, a guest that carries a lock
(`CT is locked (backup)`), a name already used, a volume on a storage that cannot snapshot, a snapshot that does
not exist, a config file whose lock the fake's lock_timeouts hold (`can't lock file
'/var/lock/qemu-server/lock-101.conf' - got timeout`). Only the reserved name `current` is refused at once (500).
While a task works the guest carries its lock (snapshot, snapshot-delete, rollback), which the other actions then
meet: a task fails with `CT is locked (snapshot)` (VM for a VM), a config change or resize is refused with it
(500); a start's task fails with it.

Real PVE says `snapshot feature is not available`; the fake says which volume is to blame:
`snapshot feature for rootfs 'slow-lvm:vm-101-disk-0' is not available`.

A rollback stops the guest (PVE stops a running one first) and leaves it stopped unless start=1, or, for a VM,
the snapshot holds its RAM (vmstate). With a guest backend each action also acts on the guest's files.
"""
import re
import time

from backend.simulation.fake_proxmox.endpoints.guest_changes import take_config_lock, task_prefix
from backend.simulation.fake_proxmox.model import LXC_DISK, QEMU_DISK, Snapshot, config_digest, disk_order
from backend.simulation.fake_proxmox.protocol import ApiError

# Config keys a snapshot does not copy (PVE::AbstractConfig::__snapshot_copy_config) besides unused disks.
NOT_SNAPSHOTTED = ("description", "lock", "digest", "snapstate", "snaptime", "vmstate")
UNUSED_DISK = re.compile(r"^unused\d+$")


def volumes(guest):
    """(config key, volume) of the guest's disks, root disk first (CD-ROMs left out, bind mounts in)."""
    pattern = LXC_DISK if guest.kind == "lxc" else QEMU_DISK
    keys = [key for key in guest.config if pattern.match(key) and "media=cdrom" not in str(guest.config[key])]
    order = (lambda key: (key != "rootfs", key)) if guest.kind == "lxc" else disk_order
    for key in sorted(keys, key=order):
        first = str(guest.config[key]).split(",")[0]
        yield key, first.split("=", 1)[1] if first.startswith(("volume=", "file=")) else first


def unsnapshottable(cluster, guest):
    """The server's complaint when a volume of the guest cannot be snapshotted, else None."""
    for key, volume in volumes(guest):
        name, _, volname = volume.partition(":")
        storage = cluster.storage_on(name, guest.node) if volname else None
        if storage is None or not storage.can_snapshot(volname):
            return f"snapshot feature for {key} '{volume}' is not available"
    return None


def lock_problem(guest):
    """`CT is locked (backup)` while the guest carries a lock, else None (PVE::AbstractConfig::check_lock)."""
    return f"{guest.label} is locked ({guest.lock})" if guest.lock else None


def config_lock_problem(cluster, guest):
    """`can't lock file '...' - got timeout` while the fake's lock_timeouts last (the task takes the config
    file's lock first, as the server's worker does), else None."""
    try:
        take_config_lock(cluster, guest)
    except ApiError as exc:
        return exc.reason
    return None


def release(cluster, guest, lock):
    """Drop the lock a task put on the guest (if the guest and that lock are still there)."""
    if cluster.guests.get(guest.vmid) is guest and guest.lock == lock:
        guest.lock = None


def backend_work(cluster, method, *args):
    """The guest backend's real work for a task, or None without a backend."""
    backend = cluster.guest_backend
    return (lambda: getattr(backend, method)(*args)) if backend else None


def list_snapshots(cluster, request, kind):
    """GET .../snapshot: the snapshots, oldest first, then `current` (the guest as it is now)."""
    guest = cluster.guest_in_path(request, kind)
    result = []
    for snapshot in sorted(guest.snapshots.values(), key=lambda snap: snap.snaptime):  # stable: taken order
        entry = {"name": snapshot.name, "snaptime": snapshot.snaptime, "description": snapshot.description}
        if kind == "qemu":
            entry["vmstate"] = int(snapshot.vmstate)
        if snapshot.parent:
            entry["parent"] = snapshot.parent
        result.append(entry)
    current = {"name": "current", "description": "You are here!", "digest": config_digest(guest.config),
               "running": int(guest.status == "running")}
    if guest.config.get("parent"):
        current["parent"] = guest.config["parent"]
    result.append(current)
    return result


def create_snapshot(cluster, request, kind):
    """POST .../snapshot (snapname, description; qemu: vmstate): a task that takes the snapshot."""
    guest = cluster.guest_in_path(request, kind)
    params = request.params
    snapname = params["snapname"]
    if snapname == "current" or (kind == "qemu" and snapname.lower() == "pending"):
        raise ApiError(500, f"unable to use snapshot name '{snapname}' (reserved name)")
    error = (config_lock_problem(cluster, guest) or
             ("you can't take a snapshot if it's a template" if guest.is_template else None) or
             lock_problem(guest) or
             (f"snapshot name '{snapname}' already used" if snapname in guest.snapshots else None) or
             unsnapshottable(cluster, guest))
    snapshot = Snapshot(snapname, int(time.time()), str(params.get("description") or ""),
                        {key: value for key, value in guest.config.items()
                         if key not in NOT_SNAPSHOTTED and not UNUSED_DISK.match(key)},
                        vmstate=kind == "qemu" and str(params.get("vmstate", "0")) == "1"
                        and guest.status == "running")
    if error is None:
        guest.lock = "snapshot"

    def finish(task):
        """Record the snapshot (the config's parent now) and unlock."""
        if error is not None:
            return
        release(cluster, guest, "snapshot")
        if task.succeeded and cluster.guests.get(guest.vmid) is guest:
            guest.snapshots[snapname] = snapshot
            guest.config["parent"] = snapname

    log = [f"snapshotting '{key}' ({volume})" for key, volume in volumes(guest)] if error is None else []
    work = backend_work(cluster, "snapshot", guest, snapname) if error is None else None
    return cluster.start_task(guest.node, f"{task_prefix(kind)}snapshot", guest.vmid, request.user, log=log,
                              error=error, on_end=finish, work=work)


def delete_snapshot(cluster, request, kind):
    """DELETE .../snapshot/{snapname}: a task that removes it (its children get its parent)."""
    guest = cluster.guest_in_path(request, kind)
    snapname = request.path_values["snapname"]
    error = (config_lock_problem(cluster, guest) or lock_problem(guest) or
             ("you can't delete a snapshot if vm is a template" if guest.is_template else None) or
             (f"snapshot '{snapname}' does not exist" if snapname not in guest.snapshots else None))
    if error is None:
        guest.lock = "snapshot-delete"

    def finish(task):
        """Forget the snapshot and unlock."""
        if error is not None:
            return
        release(cluster, guest, "snapshot-delete")
        if task.succeeded and cluster.guests.get(guest.vmid) is guest:
            gone = guest.snapshots.pop(snapname, None)
            parent = gone.parent if gone else None
            for config in [guest.config, *(snap.config for snap in guest.snapshots.values())]:
                if config.get("parent") == snapname:
                    if parent:
                        config["parent"] = parent
                    else:
                        config.pop("parent")

    work = backend_work(cluster, "delete_snapshot", guest, snapname) if error is None else None
    return cluster.start_task(guest.node, f"{task_prefix(kind)}delsnapshot", guest.vmid, request.user,
                              error=error, on_end=finish, work=work)


def rollback(cluster, request, kind):
    """POST .../snapshot/{snapname}/rollback (start): a task that stops the guest and puts its disks and config
    back as they were at the snapshot; started again when start=1 (or, for a VM, when the snapshot has its RAM)."""
    guest = cluster.guest_in_path(request, kind)
    snapname = request.path_values["snapname"]
    snapshot = guest.snapshots.get(snapname)
    error = (config_lock_problem(cluster, guest) or
             ("you can't rollback if vm is a template" if guest.is_template else None) or
             (f"snapshot '{snapname}' does not exist" if snapshot is None else None) or
             not_most_recent(cluster, guest, snapshot) or lock_problem(guest))
    start_after = str(request.params.get("start", "0")) == "1" or bool(snapshot and snapshot.vmstate)
    if error is None:
        guest.lock = "rollback"

    def finish(task):
        """Apply the snapshot's config, set the power state, unlock."""
        if error is not None:
            return
        release(cluster, guest, "rollback")
        if not task.succeeded or cluster.guests.get(guest.vmid) is not guest:
            return
        kept = {key: value for key, value in guest.config.items() if key == "description" or UNUSED_DISK.match(key)}
        guest.config = {**snapshot.config, **kept, "parent": snapname}
        if start_after:
            guest.mark_running()
        else:
            guest.mark_stopped()

    log = []
    if error is None and guest.status == "running":
        log.append(f"stopping {guest.label} {guest.vmid} for the rollback")
    log += [f"rolling back '{key}' ({volume}) to '{snapname}'" for key, volume in volumes(guest)] if snapshot else []
    work = backend_work(cluster, "rollback", guest, snapname, start_after) if error is None else None
    return cluster.start_task(guest.node, f"{task_prefix(kind)}rollback", guest.vmid, request.user, log=log,
                              error=error, on_end=finish, work=work)


def not_most_recent(cluster, guest, snapshot):
    """ZFS rolls a volume back to its latest snapshot only (ZFSPoolPlugin::volume_rollback_is_possible)."""
    names = list(guest.snapshots)  # in the order they were taken
    if names.index(snapshot.name) == len(names) - 1:
        return None
    for _, volume in volumes(guest):
        name, _, volname = volume.partition(":")
        storage = cluster.storage_on(name, guest.node)
        if storage is not None and storage.type == "zfspool":
            return f"can't rollback, '{snapshot.name}' is not most recent snapshot on '{volname}'"
    return None
