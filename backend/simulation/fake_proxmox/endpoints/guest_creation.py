"""The endpoints that make guests: POST /nodes/{node}/lxc (a container from a template archive) and
POST /nodes/{node}/qemu/{vmid}/clone (a VM from a template, full or linked)."""
import re

from backend.simulation.fake_proxmox.endpoints.config_values import (
    allocate_volumes,
    give_nics_macs,
    storage_for,
    typed_value,
)
from backend.simulation.fake_proxmox.model import QEMU_DISK, Guest, disk_order
from backend.simulation.fake_proxmox.protocol import ApiError, parameter_error

# Parameters of a container create that are instructions for the create, not config keys.
LXC_CREATE_ONLY = ("password", "ssh-public-keys", "force", "restore", "pool", "ignore-unpack-errors", "unique",
                   "ha-managed", "bwlimit")


def check_vmid_free(cluster, vmid, param="vmid"):
    """Raise the server's 'already exists' when the id is taken anywhere in the cluster."""
    existing = cluster.guests.get(vmid)
    if existing is None:
        return
    if cluster.conflict_as_400:
        raise parameter_error({param: f"VM {vmid} already exists"})
    raise ApiError(500, f"{existing.label} {vmid} already exists on node '{existing.node}'")


def create_lxc(cluster, request):
    """POST /nodes/{node}/lxc: a container locked 'create' until its vzcreate task ends."""
    node = cluster.online_node(request.path_values["node"]).name
    params = dict(request.params)
    vmid = int(params.pop("vmid"))
    check_vmid_free(cluster, vmid)
    ostemplate = params.pop("ostemplate")
    storage = params.pop("storage", "local")
    start_after = params.pop("start", "0") in ("1", 1, True)
    public_keys = params.get("ssh-public-keys") or ""
    for not_config in LXC_CREATE_ONLY:
        params.pop(not_config, None)
    if "rootfs" not in params:
        storage_for(cluster, storage, node, "rootdir", "storage")
        params["rootfs"] = f"{storage}:4"
    guest = Guest(vmid, "lxc", node, {})
    config = {key: typed_value(request.endpoint, key, value) for key, value in params.items()}
    allocate_volumes(cluster, guest, request.endpoint, config, default_storage=storage)
    give_nics_macs(cluster, guest, request.endpoint, config)
    config.setdefault("hostname", f"CT{vmid}")
    config.setdefault("memory", 512)
    config.setdefault("swap", 512)
    config.setdefault("arch", "amd64")
    config.setdefault("ostype", "debian")
    guest.config = config
    guest.lock = "create"
    cluster.guests[vmid] = guest

    def finish(task):
        """Unlock the new container, or remove it when the task failed."""
        if not task.succeeded:
            cluster.guests.pop(vmid, None)
            return
        guest.lock = None
        if start_after:
            guest.mark_running()

    log = [f"extracting archive '{ostemplate}'", "Total bytes read: 524288000 (500MiB, 250MiB/s)",
           "Detected container architecture: amd64",
           "Creating SSH host key 'ssh_host_ed25519_key' - this may take some time ..."]
    work = None
    if cluster.guest_backend:
        def work():
            cluster.guest_backend.create_lxc(guest, public_keys)
            if start_after:
                cluster.guest_backend.power(guest, "start")
    return cluster.start_task(node, "vzcreate", vmid, request.user, log=log, on_end=finish, work=work)


def clone_qemu(cluster, request):
    """POST /nodes/{node}/qemu/{vmid}/clone: a new VM locked 'clone' until its qmclone task ends."""
    source = cluster.guest_in_path(request, "qemu")
    params = request.params
    newid = int(params["newid"])
    if newid in cluster.guests:
        if cluster.conflict_as_400:
            raise parameter_error({"newid": f"VM {newid} already exists"})
        raise ApiError(500, f"unable to create VM {newid}: config file already exists")
    target = cluster.online_node(params["target"]).name if params.get("target") else source.node
    full = params.get("full")
    full = (not source.is_template) if full is None else str(full) == "1"
    if not full and not source.is_template:
        raise ApiError(500, "parameter 'full' must be set for a clone of a VM which is not a template")
    if params.get("storage"):
        if not full:
            raise parameter_error({"storage": "storage selection is only available for full clones"})
        storage_for(cluster, params["storage"], target, "images", "storage")
    config = {key: value for key, value in source.config.items() if key not in ("template", "lock", "parent")}
    config["name"] = params.get("name") or f"Copy-of-VM-{source.name}"
    if params.get("description"):
        config["description"] = params["description"]
    for number, key in enumerate(sorted((key for key in config if QEMU_DISK.match(key)), key=disk_order)):
        config[key] = clone_volume(str(config[key]), source.vmid, newid, number, full, params.get("storage"))
    for key in [key for key in config if re.fullmatch(r"net\d+", key)]:
        config[key] = re.sub(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}", cluster.new_mac(), str(config[key]))
    guest = Guest(newid, "qemu", target, config)
    guest.lock = "clone"
    cluster.guests[newid] = guest

    def finish(task):
        """Unlock the clone, or remove it when the task failed."""
        if task.succeeded:
            guest.lock = None
        else:
            cluster.guests.pop(newid, None)

    clone_kind = "full" if full else "linked"
    log = [f"create {clone_kind} clone of drive scsi0 ({source.config.get('scsi0', '')})",
           "transferred 10.0 GiB of 10.0 GiB (100.00%)" if full else "Logical volume created."]
    return cluster.start_task(source.node, "qmclone", source.vmid, request.user, log=log, on_end=finish)


def clone_volume(value, source_id, newid, number, full, storage):
    """The clone's copy of a template disk: a new full volume or a linked one on the base."""
    volume, _, options = value.partition(",")
    store, _, name = volume.partition(":")
    if "media=cdrom" in options:
        name = name.replace(f"vm-{source_id}-cloudinit", f"vm-{newid}-cloudinit")
        return ",".join(filter(None, [f"{store}:{name}", options]))
    if full:
        volume = f"{storage or store}:vm-{newid}-disk-{number}"
    else:
        volume = f"{store}:{name}/vm-{newid}-disk-{number}"
    return ",".join(filter(None, [volume, options]))
