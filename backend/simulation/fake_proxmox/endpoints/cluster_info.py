"""The cluster-wide and per-node endpoints: /version, /cluster/nextid, /cluster/resources, /nodes,
/nodes/{node}/status and /nodes/{node}/storage, with the usage figures they report."""
import itertools
import time

from backend.simulation.fake_proxmox.endpoints.guest_reads import guest_status
from backend.simulation.fake_proxmox.model import BEING_MADE, GIB
from backend.simulation.fake_proxmox.protocol import parameter_error
from backend.simulation.pve_schema import split_list


def node_usage(cluster, node):
    """(memory used, disk used, cpu fraction) of a node, from its base load and guests."""
    guests = [guest for guest in cluster.guests.values() if guest.node == node.name]
    mem = node.base_mem + sum(guest.maxmem for guest in guests if guest.status == "running")
    disk = node.base_disk + sum(sum(guest.disks().values()) for guest in guests)
    running = sum(guest.cores for guest in guests if guest.status == "running")
    return mem, disk, round(min(1.0, 0.01 + 0.02 * running / max(node.maxcpu, 1)), 4)


def node_entry(cluster, node):
    """A node as /nodes and /cluster/resources list it."""
    entry = {"node": node.name, "id": f"node/{node.name}", "type": "node",
             "status": "online" if node.online else "offline"}
    if node.online:
        mem, disk, cpu = node_usage(cluster, node)
        entry.update({"cpu": cpu, "maxcpu": node.maxcpu, "mem": mem, "maxmem": node.maxmem,
                      "disk": disk, "maxdisk": node.maxdisk, "level": "",
                      "uptime": int(time.time() - node.booted_at),
                      "ssl_fingerprint": "00:" * 31 + "00"})
    return entry


def storage_used(cluster, storage, node_name):
    """Bytes the guests' disks and the backups take on a storage of a node (all nodes when shared)."""
    total = sum(backup.size for backup in cluster.backups_on(storage, node_name))
    for guest in cluster.guests.values():
        if not storage.shared and guest.node != node_name:
            continue
        for key, size in guest.disks().items():
            if str(guest.config[key]).startswith(f"{storage.storage}:"):
                total += size
    return total


def get_version(cluster, request):
    """GET /version."""
    return {"version": cluster.version, "release": cluster.version.rsplit(".", 1)[0],
            "repoid": "0123abcd", "console": "xtermjs"}


def list_nodes(cluster, request):
    """GET /nodes."""
    return [node_entry(cluster, node) for node in cluster.nodes.values()]


def get_node_status(cluster, request):
    """GET /nodes/{node}/status."""
    node = cluster.online_node(request.path_values["node"])
    mem, disk, cpu = node_usage(cluster, node)
    return {
        "cpu": cpu, "wait": 0.0, "idle": 0, "uptime": int(time.time() - node.booted_at),
        "loadavg": ["0.10", "0.20", "0.30"],
        "memory": {"total": node.maxmem, "used": mem, "free": node.maxmem - mem,
                   "available": node.maxmem - mem},
        "swap": {"total": 8 * GIB, "used": 0, "free": 8 * GIB},
        "rootfs": {"total": node.maxdisk, "used": disk, "free": node.maxdisk - disk,
                   "avail": node.maxdisk - disk},
        "cpuinfo": {"cpus": node.maxcpu, "cores": node.maxcpu, "sockets": 1, "model": "Fake CPU",
                    "mhz": "2400.000", "hvm": "1", "flags": ""},
        "pveversion": f"pve-manager/{cluster.version}/0123abcd", "kversion": "Linux 6.14.8-2-pve",
        "current-kernel": {"sysname": "Linux", "release": "6.14.8-2-pve", "machine": "x86_64",
                           "version": "#1 SMP PREEMPT_DYNAMIC PMX 6.14.8-2"},
        "boot-info": {"mode": "efi", "secureboot": 0}, "ksm": {"shared": 0},
    }


def list_storage(cluster, request):
    """GET /nodes/{node}/storage, filtered by content, storage and enabled."""
    node = cluster.online_node(request.path_values["node"]).name
    params = request.params
    result = []
    for storage in cluster.storages:
        if not storage.on(node):
            continue
        if params.get("content") and not all(storage.holds(c) for c in split_list(params["content"])):
            continue
        if params.get("storage") and params["storage"] != storage.storage:
            continue
        used = storage_used(cluster, storage, node)
        result.append({"storage": storage.storage, "type": storage.type, "content": storage.content,
                       "active": 1, "enabled": 1, "shared": int(storage.shared), "total": storage.total,
                       "used": used, "avail": storage.total - used,
                       "used_fraction": round(used / storage.total, 6) if storage.total else 0})
    return result


def next_id(cluster, request):
    """GET /cluster/nextid: the lowest free id >= 100 (not reserved), or check a given one."""
    if "vmid" in request.params:
        vmid = int(request.params["vmid"])
        if vmid in cluster.guests:
            raise parameter_error({"vmid": f"VM {vmid} already exists"})
        return str(vmid)
    if cluster.nextid_fixed is not None:
        return str(cluster.nextid_fixed)
    return str(next(i for i in itertools.count(100) if i not in cluster.guests))


def guest_resource(cluster, guest):
    """A guest as /cluster/resources lists it."""
    node = cluster.nodes.get(guest.node)
    entry = {"id": f"{guest.kind}/{guest.vmid}", "type": guest.kind, "vmid": guest.vmid,
             "node": guest.node, "name": guest.name, "template": int(guest.is_template)}
    if node is None or not node.online:
        entry["status"] = "unknown"
        return entry
    entry.update(guest_status(guest))
    entry["maxcpu"] = guest.cores
    entry.pop("ha", None)
    entry.pop("qmpstatus", None)
    if guest.lock in BEING_MADE:
        # Like the real server: until create/clone ends, the config file holds little more than the
        # lock, so the guest has no name and no tags yet.
        entry.pop("name", None)
        entry.pop("tags", None)
    return entry


def cluster_resources(cluster, request):
    """GET /cluster/resources, optionally by type (vm, node, storage)."""
    resource_type = request.params.get("type")
    result = []
    if resource_type in (None, "vm"):
        result += [guest_resource(cluster, guest)
                   for guest in sorted(cluster.guests.values(), key=lambda guest: guest.vmid)]
    if resource_type in (None, "node"):
        result += [node_entry(cluster, node) for node in cluster.nodes.values()]
    if resource_type in (None, "storage"):
        for node in cluster.nodes.values():
            for storage in (s for s in cluster.storages if s.on(node.name)):
                used = storage_used(cluster, storage, node.name)
                result.append({"id": f"storage/{node.name}/{storage.storage}", "type": "storage",
                               "node": node.name, "storage": storage.storage, "plugintype": storage.type,
                               "content": storage.content, "shared": int(storage.shared),
                               "status": "available" if node.online else "unknown",
                               "disk": used, "maxdisk": storage.total})
    return result
