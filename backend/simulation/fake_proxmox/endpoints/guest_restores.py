"""Guests made from backups, and VMs made from nothing: POST /nodes/{node}/lxc with restore=1 (ostemplate the
backup's volid) and POST /nodes/{node}/qemu (with archive, a restore; without, a new VM).

As pve-container's and qemu-server's create_vm do it: the guest's config is the one the backup holds (without its
snapshots' parent), overridden by the request's values; its disks are allocated anew with their old sizes, on
`storage` (a VM's keep their own storages when none is given); unique=1 gives its NICs new MAC addresses. A
restore is a task (vzrestore, qmrestore) under the lock `create`; the guest is stopped afterwards unless start=1.
A volid no storage of the node has is `can't find file '...'` (500); a VM's drive in a restore request is
`option conflicts with option 'archive'` (400); a backup of the other kind fails the task (the fake's words:
`unable to restore CT 102 - archive '...' is not a container backup`).
"""
import re

from backend.simulation.fake_proxmox.endpoints.backups import dump_dir
from backend.simulation.fake_proxmox.endpoints.config_values import (
    allocate_volumes,
    give_nics_macs,
    storage_for,
    typed_value,
)
from backend.simulation.fake_proxmox.endpoints.guest_creation import LXC_CREATE_ONLY, check_vmid_free, create_lxc
from backend.simulation.fake_proxmox.model import GIB, LXC_DISK, QEMU_DISK, Guest, parse_size
from backend.simulation.fake_proxmox.protocol import ApiError, parameter_error
from backend.simulation.pve_schema import parse_property_string

# Parameters of a VM create that are instructions for the create, not config keys.
QEMU_CREATE_ONLY = ("archive", "storage", "force", "unique", "start", "pool", "bwlimit", "live-restore",
                    "ha-managed", "import-working-storage")
# Keys a backup's config does not pass on to the restored guest.
NOT_RESTORED = ("parent", "lock")


def find_backup(cluster, volid, node):
    """The Backup a node sees under this volid, or the server's refusal (500)."""
    name, colon, _ = volid.partition(":")
    storage = cluster.storage_on(name, node) if colon else None
    if colon and storage is None:
        raise ApiError(500, f"storage '{name}' does not exist")
    backup = cluster.backups.get(volid)
    if storage is None or backup is None or backup not in cluster.backups_on(storage, node):
        raise ApiError(500, f"can't find file '{volid}'")
    return backup


def create_or_restore_lxc(cluster, request):
    """POST /nodes/{node}/lxc: a restore when restore=1, else a container from a template."""
    if str(request.params.get("restore", "0")) == "1":
        return restore_lxc(cluster, request)
    return create_lxc(cluster, request)


def restored_disks(config, pattern, newid, storage, requested):
    """The backup's disks as STORAGE:SIZE values to allocate anew (on storage, or each on its own), in place of
    the old volumes; CD-ROMs and bind mounts as they were, a cloud-init drive renamed for the new guest."""
    disks = {}
    for key, value in config.items():
        if key in requested or not pattern.match(key):
            continue
        volume, _, options = str(value).partition(",")
        volume = volume.split("=", 1)[1] if volume.startswith(("volume=", "file=")) else volume
        old_storage, colon, _ = volume.partition(":")
        if "media=cdrom" in options or not colon:
            if re.search(r"vm-\d+-cloudinit", volume):
                volume = f"{storage or old_storage}:vm-{newid}-cloudinit"
            disks[key] = ",".join(filter(None, [volume, options]))
            continue
        size = re.search(r"(?:^|,)size=(\d+(?:\.\d+)?[KMGT]?)", options)
        gib = format(parse_size(size.group(1)) / GIB if size else 4, "g")
        disks[key] = ",".join(filter(None, [f"{storage or old_storage}:{gib}", options]))
    return disks


def backup_config(backup, endpoint, unique):
    """The backup's config for a new guest: without its parent and lock, NICs without MACs when unique."""
    config = {key: value for key, value in backup.config.items() if key not in NOT_RESTORED}
    if unique:
        for key in [key for key in config if re.fullmatch(r"net\d+", key)]:
            fmt = (endpoint.property_for(key) or {}).get("format")
            parsed = parse_property_string(fmt, str(config[key]))
            parsed.pop("hwaddr" if backup.kind == "lxc" else "macaddr", None)
            config[key] = ",".join(f"{name}={value}" for name, value in parsed.items())
    return config


def restore_lxc(cluster, request):
    """POST /nodes/{node}/lxc with restore=1: a vzrestore task that makes the container from its backup."""
    node = cluster.online_node(request.path_values["node"]).name
    params = dict(request.params)
    vmid = int(params.pop("vmid"))
    check_vmid_free(cluster, vmid)
    volid = params.pop("ostemplate")
    backup = find_backup(cluster, volid, node)
    storage = params.pop("storage", "local")
    storage_for(cluster, storage, node, "rootdir", "storage")
    start_after = str(params.pop("start", "0")) == "1"
    unique = str(params.get("unique", "0")) == "1"
    public_keys = params.get("ssh-public-keys") or ""
    for not_config in LXC_CREATE_ONLY:
        params.pop(not_config, None)
    error = (None if backup.kind == "lxc" else
             f"unable to restore CT {vmid} - archive '{volid}' is not a container backup")
    requested = {key: typed_value(request.endpoint, key, value) for key, value in params.items()}
    config = {}
    if error is None:
        config = backup_config(backup, request.endpoint, unique)
        config.update(restored_disks(backup.config, LXC_DISK, vmid, storage, requested))
    config.update(requested)
    guest = Guest(vmid, "lxc", node, {})
    allocate_volumes(cluster, guest, request.endpoint, config, default_storage=storage)
    give_nics_macs(cluster, guest, request.endpoint, config)
    config.setdefault("hostname", f"CT{vmid}")
    guest.config = config
    return start_restore(cluster, request, guest, backup, "vzrestore", start_after, error, public_keys,
                         log=[f"recovering backed-up configuration from '{volid}'", f"restoring '{volid}' now..",
                              f"extracting archive '{dump_dir(cluster.storage_on(backup.storage, node))}/"
                              f"{backup.filename}'", f"Total bytes read: {backup.size}",
                              "merging backed-up and given configuration.."])


def create_qemu(cluster, request):
    """POST /nodes/{node}/qemu: a restore when archive is given, else a qmcreate task that makes an empty VM."""
    node = cluster.online_node(request.path_values["node"]).name
    params = dict(request.params)
    vmid = int(params.pop("vmid"))
    check_vmid_free(cluster, vmid)
    if "archive" in params:
        return restore_qemu(cluster, request, node, params, vmid)
    start_after = str(params.pop("start", "0")) == "1"
    for not_config in QEMU_CREATE_ONLY:
        params.pop(not_config, None)
    guest = Guest(vmid, "qemu", node, {})
    config = {key: typed_value(request.endpoint, key, value) for key, value in params.items()}
    allocate_volumes(cluster, guest, request.endpoint, config)
    give_nics_macs(cluster, guest, request.endpoint, config)
    guest.config = config
    guest.lock = "create"
    cluster.guests[vmid] = guest

    def finish(task):
        """Unlock the new VM (and start it if asked), or remove it when the task failed."""
        if not task.succeeded:
            cluster.guests.pop(vmid, None)
            return
        guest.lock = None
        if start_after:
            guest.mark_running()

    backend = cluster.guest_backend
    work = (lambda: backend.power(guest, "start")) if backend and start_after else None
    return cluster.start_task(node, "qmcreate", vmid, request.user, on_end=finish, work=work)


def restore_qemu(cluster, request, node, params, vmid):
    """POST /nodes/{node}/qemu with archive: a qmrestore task that makes the VM from its backup."""
    conflicts = {key: "option conflicts with option 'archive'" for key in params if QEMU_DISK.match(key)}
    if conflicts:
        raise parameter_error(conflicts)
    volid = params.pop("archive")
    backup = find_backup(cluster, volid, node)
    storage = params.get("storage")
    if storage:
        storage_for(cluster, storage, node, "images", "storage")
    start_after = str(params.get("start", "0")) == "1"
    unique = str(params.get("unique", "0")) == "1"
    for not_config in QEMU_CREATE_ONLY:
        params.pop(not_config, None)
    error = None if backup.kind == "qemu" else f"unable to restore VM {vmid} - archive '{volid}' is not a VM backup"
    requested = {key: typed_value(request.endpoint, key, value) for key, value in params.items()}
    config = {}
    if error is None:
        config = backup_config(backup, request.endpoint, unique)
        config.update(restored_disks(backup.config, QEMU_DISK, vmid, storage, requested))
    config.update(requested)
    guest = Guest(vmid, "qemu", node, {})
    allocate_volumes(cluster, guest, request.endpoint, config)
    give_nics_macs(cluster, guest, request.endpoint, config)
    guest.config = config
    archive = f"{dump_dir(cluster.storage_on(backup.storage, node))}/{backup.filename}"
    reader = {"zst": "zstd -q -d -c", "gz": "zcat", "lzo": "lzop -d -c"}.get(backup.format.partition(".")[2])
    source = f"{reader} {archive} | vma extract -v -r /var/tmp/vzdumptmp.fifo -" if reader else \
        f"vma extract -v -r /var/tmp/vzdumptmp.fifo {archive}"
    log = [f"restore vma archive: {source} /var/tmp/vzdumptmp"]
    log += [f"new volume ID is '{str(value).split(',')[0]}'" for key, value in config.items()
            if QEMU_DISK.match(key) and "media=cdrom" not in str(value)]
    return start_restore(cluster, request, guest, backup, "qmrestore", start_after, error, "", log=log)


def start_restore(cluster, request, guest, backup, task_type, start_after, error, public_keys, log):
    """The restore task: the guest locked `create` until it ends; removed when it fails, stopped or started
    (start=1) when it succeeds. With a guest backend, its files come from the backup."""
    guest.lock = "create"
    cluster.guests[guest.vmid] = guest

    def finish(task):
        """Unlock the restored guest (and start it if asked), or remove it when the task failed."""
        if not task.succeeded:
            if cluster.guests.get(guest.vmid) is guest:
                del cluster.guests[guest.vmid]
            return
        guest.lock = None
        if start_after:
            guest.mark_running()

    backend = cluster.guest_backend
    work = None
    if backend is not None and error is None:
        def work():
            backend.restore(guest, backup, public_keys)
            if start_after:
                backend.power(guest, "start")
    return cluster.start_task(guest.node, task_type, guest.vmid, request.user, log=log if error is None else [],
                              error=error, on_end=finish, work=work)
