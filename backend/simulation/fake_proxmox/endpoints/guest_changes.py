"""The endpoints that change or remove guests: config updates, disk resizes, power actions and deletes."""
import re

from backend.simulation.fake_proxmox.endpoints.config_values import allocate_volumes, give_nics_macs, typed_value
from backend.simulation.fake_proxmox.model import config_digest, format_size, parse_size
from backend.simulation.fake_proxmox.protocol import ApiError
from backend.simulation.pve_schema import split_list

NOT_CONFIG_KEYS = {"delete", "digest", "force", "revert", "skiplock", "background_delay"}
POWER_VERBS = {"start": "starting", "stop": "stopping", "shutdown": "shutting down", "reboot": "rebooting"}


def task_prefix(kind):
    """What task types of a guest kind begin with: vzstart, qmstart..."""
    return "vz" if kind == "lxc" else "qm"


def take_config_lock(cluster, guest):
    """Fail like a contended config lock while lock_timeouts are pending."""
    if cluster.lock_timeouts > 0:
        cluster.lock_timeouts -= 1
        path = (f"/var/lock/qemu-server/lock-{guest.vmid}.conf" if guest.kind == "qemu"
                else f"/run/lock/lxc/pve-config-{guest.vmid}.lock")
        raise ApiError(500, f"can't lock file '{path}' - got timeout")


def check_unlocked(guest, params):
    """Refuse to touch a guest that carries a lock (unless skiplock)."""
    if guest.lock and str(params.get("skiplock", "0")) != "1":
        raise ApiError(500, f"{guest.label} is locked ({guest.lock})")


def write_config(cluster, request, kind):
    """Apply a config change: deletions, then new values (with disks and MACs as the server does)."""
    guest = cluster.guest_in_path(request, kind)
    params = request.params
    take_config_lock(cluster, guest)
    check_unlocked(guest, params)
    if params.get("digest") and params["digest"] != config_digest(guest.config):
        raise ApiError(500, "detected modified configuration - file changed by other user? Try again.")
    for key in split_list(str(params.get("delete", ""))):
        guest.config.pop(key, None)
    values = {key: typed_value(request.endpoint, key, value) for key, value in params.items()
              if key not in NOT_CONFIG_KEYS}
    allocate_volumes(cluster, guest, request.endpoint, values)
    give_nics_macs(cluster, guest, request.endpoint, values)
    guest.config.update(values)
    return guest


def update_config(cluster, request, kind):
    """PUT /nodes/{node}/{kind}/{vmid}/config (synchronous)."""
    write_config(cluster, request, kind)
    return None


def update_qemu_config_async(cluster, request):
    """POST /nodes/{node}/qemu/{vmid}/config: applied, and a qmconfig task returned."""
    guest = write_config(cluster, request, "qemu")
    return cluster.start_task(guest.node, "qmconfig", guest.vmid, request.user,
                              log=["update VM {}: {}".format(guest.vmid, ", ".join(sorted(request.params)))])


def resize(cluster, request, kind):
    """PUT /nodes/{node}/{kind}/{vmid}/resize: grow a disk (+N or absolute); shrinking fails the task."""
    guest = cluster.guest_in_path(request, kind)
    params = request.params
    take_config_lock(cluster, guest)
    check_unlocked(guest, params)
    disk = params["disk"]
    if disk not in guest.config:
        raise ApiError(500, f"disk '{disk}' does not exist")
    current = guest.disks().get(disk, 0)
    size = params["size"]
    wanted = current + parse_size(size[1:]) if size.startswith("+") else parse_size(size)
    error = "shrinking disks is not supported" if wanted < current else None

    def finish(task):
        """Write the new size into the disk's config line."""
        if task.succeeded and disk in guest.config:
            value = str(guest.config[disk])
            if re.search(r"(^|,)size=", value):
                value = re.sub(r"((?:^|,)size=)[^,]+", rf"\g<1>{format_size(wanted)}", value)
            else:
                value = f"{value},size={format_size(wanted)}"
            guest.config[disk] = value

    log = [f"  Size of logical volume changed from {format_size(current)} to {format_size(wanted)}."]
    return cluster.start_task(guest.node, "resize", guest.vmid, request.user, log=log, error=error,
                              on_end=finish)


def power(cluster, request, kind, action):
    """POST /nodes/{node}/{kind}/{vmid}/status/{start,stop,shutdown,reboot}: a task that changes the status
    when it ends."""
    guest = cluster.guest_in_path(request, kind)
    running = guest.status == "running"
    error = None
    if action == "start":
        if running and kind == "lxc":
            raise ApiError(500, f"CT {guest.vmid} already running")
        if guest.is_template:
            error = "you can't start a vm if it's a template"
        elif running:
            error = f"VM {guest.vmid} already running"
    elif not running and kind == "lxc":
        raise ApiError(500, f"CT {guest.vmid} not running")
    elif not running and action in ("shutdown", "reboot"):
        error = f"VM {guest.vmid} not running"
    if error is None and guest.lock and str(request.params.get("skiplock", "0")) != "1":
        error = f"{guest.label} is locked ({guest.lock})"

    def finish(task):
        """Apply the new power state."""
        if not task.succeeded or cluster.guests.get(guest.vmid) is not guest:
            return
        if action in ("start", "reboot"):
            guest.mark_running()
        else:
            guest.mark_stopped()

    work = (lambda: cluster.guest_backend.power(guest, action)) if cluster.guest_backend else None
    return cluster.start_task(guest.node, f"{task_prefix(kind)}{action}", guest.vmid, request.user,
                              log=[f"{POWER_VERBS[action]} {guest.label} {guest.vmid}"], error=error,
                              on_end=finish, work=work)


def delete(cluster, request, kind):
    """DELETE /nodes/{node}/{kind}/{vmid}: refused while running (lxc: unless force), removed when the task
    ends."""
    guest = cluster.guest_in_path(request, kind)
    params = request.params
    check_unlocked(guest, params)
    if guest.status == "running":
        if kind == "qemu":
            raise ApiError(500, f"VM {guest.vmid} is running - destroy failed")
        if str(params.get("force", "0")) != "1":
            raise ApiError(500, f"unable to destroy CT {guest.vmid} - container is running")

    def finish(task):
        """Remove the guest (its address goes back to the pool with it)."""
        if task.succeeded and cluster.guests.get(guest.vmid) is guest:
            del cluster.guests[guest.vmid]

    log = [f"  Logical volume \"vm-{guest.vmid}-disk-0\" successfully removed."]
    if str(params.get("purge", "0")) == "1":
        log.append(f"purging {guest.label} {guest.vmid} from related configurations..")
    work = (lambda: cluster.guest_backend.destroy(guest)) if cluster.guest_backend else None
    return cluster.start_task(guest.node, f"{task_prefix(kind)}destroy", guest.vmid, request.user, log=log,
                              on_end=finish, work=work)
