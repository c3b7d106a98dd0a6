"""The endpoints that read guests: the per-node lists, a guest's index, config and current status, and its
network interfaces (the container's own, or what a VM's guest agent reports)."""
import time

from backend.simulation.fake_proxmox.model import BEING_MADE, MIB, config_digest
from backend.simulation.fake_proxmox.protocol import ApiError

IP_POOL_PREFIX = "10.10.0."
# What GET /nodes/{node}/{kind}/{vmid} lists, per kind.
SUBDIRECTORIES = {
    "lxc": ("config", "status", "vncproxy", "termproxy", "migrate", "clone", "rrd", "rrddata", "firewall",
            "snapshot", "resize", "interfaces"),
    "qemu": ("config", "pending", "status", "unlink", "vncproxy", "termproxy", "migrate", "resize", "move",
             "rrd", "rrddata", "monitor", "agent", "snapshot", "spiceproxy", "sendkey", "firewall"),
}


def guest_status(guest):
    """status/current fields of a guest (also the base of the list entries)."""
    running = guest.status == "running"
    status = {
        "vmid": guest.vmid, "name": guest.name, "status": guest.status, "cpus": guest.cores,
        "cpu": 0.02 if running else 0, "maxmem": guest.maxmem,
        "mem": guest.maxmem // 4 if running else 0, "maxdisk": guest.maxdisk,
        "disk": guest.maxdisk // 5 if running and guest.kind == "lxc" else 0,
        "uptime": int(time.monotonic() - guest.started_at) if running else 0,
        "netin": 1024 if running else 0, "netout": 512 if running else 0,
        "diskread": 0, "diskwrite": 0, "ha": {"managed": 0},
    }
    if guest.kind == "lxc":
        status.update({"type": "lxc", "maxswap": int(guest.config.get("swap", 512)) * MIB, "swap": 0})
    else:
        status.update({"qmpstatus": guest.status, "agent": int(guest.agent_enabled())})
        if running:
            status["pid"] = 100000 + guest.vmid
    if guest.config.get("tags"):
        status["tags"] = str(guest.config["tags"])
    if guest.lock:
        status["lock"] = guest.lock
    if guest.is_template:
        status["template"] = 1
    return status


def list_guests(cluster, request, kind):
    """GET /nodes/{node}/lxc and /nodes/{node}/qemu: the guests of one kind on a node."""
    node = cluster.online_node(request.path_values["node"]).name
    guests = sorted((guest for guest in cluster.guests.values() if guest.node == node and guest.kind == kind),
                    key=lambda guest: guest.vmid)
    return [{key: value for key, value in guest_status(guest).items() if key != "ha"} for guest in guests]


def guest_index(cluster, request, kind):
    """GET /nodes/{node}/{kind}/{vmid}: the directory index."""
    cluster.guest_in_path(request, kind)
    return [{"subdir": name} for name in SUBDIRECTORIES[kind]]


def get_config(cluster, request, kind):
    """GET /nodes/{node}/{kind}/{vmid}/config: the config with its digest (and lock, as the real file carries
    it); empty but for the lock while the guest is being made."""
    guest = cluster.guest_in_path(request, kind)
    config = dict(guest.config) if guest.lock not in BEING_MADE else {}
    if guest.lock:
        config["lock"] = guest.lock
    config["digest"] = config_digest(guest.config)
    return config


def get_status(cluster, request, kind):
    """GET /nodes/{node}/{kind}/{vmid}/status/current."""
    return guest_status(cluster.guest_in_path(request, kind))


def lxc_interfaces(cluster, request):
    """GET /nodes/{node}/lxc/{vmid}/interfaces: null while stopped, lo + eth0 once running."""
    guest = cluster.guest_in_path(request, "lxc")
    if guest.status != "running":
        return None
    address, prefix = guest_address(cluster, guest)
    mac = guest.mac().lower()
    return [
        {"name": "lo", "hwaddr": "00:00:00:00:00:00", "hardware-address": "00:00:00:00:00:00",
         "inet": "127.0.0.1/8", "inet6": "::1/128",
         "ip-addresses": [{"ip-address-type": "inet", "ip-address": "127.0.0.1", "prefix": 8},
                          {"ip-address-type": "inet6", "ip-address": "::1", "prefix": 128}]},
        {"name": "eth0", "hwaddr": mac, "hardware-address": mac, "inet": f"{address}/{prefix}",
         "inet6": f"{link_local(mac)}/64",
         "ip-addresses": [{"ip-address-type": "inet", "ip-address": address, "prefix": prefix},
                          {"ip-address-type": "inet6", "ip-address": link_local(mac), "prefix": 64}]},
    ]


def agent_interfaces(cluster, request):
    """GET .../qemu/{vmid}/agent/network-get-interfaces: the guest agent's answer once it runs."""
    guest = cluster.guest_in_path(request, "qemu")
    if guest.status != "running":
        raise ApiError(500, f"VM {guest.vmid} is not running")
    if not guest.agent_enabled():
        raise ApiError(500, "No QEMU guest agent configured")
    up_for = time.monotonic() - guest.started_at
    if cluster.agent_never_answers or up_for < cluster.agent_delay:
        raise ApiError(500, "QEMU guest agent is not running")
    mac = guest.mac().lower()
    eth0 = [{"ip-address-type": "ipv6", "ip-address": link_local(mac), "prefix": 64}]
    if up_for >= cluster.agent_delay + cluster.agent_ip_delay:
        address, prefix = guest_address(cluster, guest)
        eth0.insert(0, {"ip-address-type": "ipv4", "ip-address": address, "prefix": prefix})
    stats = {"rx-bytes": 1024, "rx-packets": 10, "rx-errs": 0, "rx-dropped": 0,
             "tx-bytes": 512, "tx-packets": 5, "tx-errs": 0, "tx-dropped": 0}
    return {"result": [
        {"name": "lo", "hardware-address": "00:00:00:00:00:00", "statistics": stats,
         "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8},
                          {"ip-address-type": "ipv6", "ip-address": "::1", "prefix": 128}]},
        {"name": "eth0", "hardware-address": mac, "statistics": stats, "ip-addresses": eth0},
    ]}


def guest_address(cluster, guest):
    """(IPv4, prefix) of a running guest: a real guest's own, its static address, else one from 10.10.0.0/24."""
    real = cluster.guest_backend.address(guest) if cluster.guest_backend else None
    if real:
        return real
    static = guest.static_ipv4()
    if static:
        return static
    if guest.ipv4 is None:
        taken = {other.ipv4 for other in cluster.guests.values()}
        pool = (f"{IP_POOL_PREFIX}{i}" for i in range(2, 255))
        guest.ipv4 = next((address for address in pool if address not in taken), f"{IP_POOL_PREFIX}254")
    return guest.ipv4, 24


def link_local(mac):
    """The EUI-64 link-local IPv6 address of a MAC."""
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    eui = octets[:3] + [0xFF, 0xFE] + octets[3:]
    groups = [f"{eui[i] << 8 | eui[i + 1]:x}" for i in range(0, 8, 2)]
    return "fe80::" + ":".join(groups)
