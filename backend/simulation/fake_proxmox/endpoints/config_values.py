"""How the server turns the values of a create or config request into a guest's config: typed as the schema
says, STORAGE:SIZE disks allocated as volumes, and a MAC address for every NIC that has none."""
import itertools
import re

from backend.simulation.fake_proxmox.model import GIB, LXC_DISK, QEMU_DISK, format_size
from backend.simulation.fake_proxmox.protocol import ApiError, parameter_error
from backend.simulation.pve_schema import format_property_string, parse_property_string

NEW_VOLUME = re.compile(r"^(?P<storage>[a-z][a-z0-9\-_.]*[a-z0-9]):(?P<size>\d+(\.\d+)?)$", re.I)


def typed_value(endpoint, key, value):
    """A config value typed as the schema says (integers and booleans as numbers)."""
    prop = endpoint.property_for(key) or {}
    if isinstance(value, bool):
        return int(value)
    if prop.get("type") in ("integer", "boolean"):
        return int(value)
    if prop.get("type") == "number":
        return float(value)
    return str(value)


def storage_for(cluster, name, node, content, param):
    """The Storage `name` on `node` for a content type, or the server's refusal."""
    storage = next((s for s in cluster.storages if s.storage == name and s.on(node)), None)
    if storage is None:
        raise ApiError(500, f"storage '{name}' does not exist")
    if not storage.holds(content):
        what = "container directories" if content == "rootdir" else "vm images"
        raise parameter_error({param: f"storage '{name}' does not support {what}"})
    return storage


def allocate_volumes(cluster, guest, endpoint, values, default_storage=None):
    """Turn STORAGE:SIZE (GiB) disk values into allocated volumes with a size=; in place."""
    pattern = LXC_DISK if guest.kind == "lxc" else QEMU_DISK
    content = "rootdir" if guest.kind == "lxc" else "images"
    used = {match.group(1) for value in guest.config.values()
            for match in [re.search(rf"vm-{guest.vmid}-disk-(\d+)", str(value))] if match}
    index = itertools.count()
    for key in sorted(key for key in values if pattern.match(key)):
        fmt = (endpoint.property_for(key) or {}).get("format")
        parsed = parse_property_string(fmt, str(values[key])) if isinstance(fmt, dict) else {}
        volume_key = "volume" if guest.kind == "lxc" else "file"
        volume = str(parsed.get(volume_key, ""))
        if guest.kind == "lxc" and re.fullmatch(r"\d+(\.\d+)?", volume):
            volume = f"{default_storage or 'local'}:{volume}"
        match = NEW_VOLUME.match(volume)
        if not match:
            continue
        storage_for(cluster, match.group("storage"), guest.node, content, key)
        number = next(i for i in index if str(i) not in used)
        parsed[volume_key] = f"{match.group('storage')}:vm-{guest.vmid}-disk-{number}"
        parsed["size"] = format_size(int(float(match.group("size")) * GIB))
        values[key] = format_property_string(parsed, fmt)


def give_nics_macs(cluster, guest, endpoint, values):
    """Give every NIC without a MAC address one, as the server does; in place."""
    for key in [key for key in values if re.fullmatch(r"net\d+", key)]:
        fmt = (endpoint.property_for(key) or {}).get("format")
        parsed = parse_property_string(fmt, str(values[key]))
        if guest.kind == "lxc":
            parsed.setdefault("hwaddr", cluster.new_mac())
            values[key] = format_property_string(parsed)
        else:  # qemu spells the NIC model=MAC first: virtio=BC:24:11:..,bridge=vmbr0
            model, mac = parsed.pop("model", "virtio"), parsed.pop("macaddr", None)
            values[key] = format_property_string({model: mac or cluster.new_mac(), **parsed})
