"""The route table: which handler answers each endpoint of the API subset.

The schema check (pve_schema.ApiSchema.check) matches a request to an endpoint of the subset; ROUTES maps
that endpoint's (method, templated path) to its handler, a function(cluster, request) whose result becomes
`{"data": ...}`. Every endpoint of the subset has a route (tests/test_fake_proxmox.py checks that).
"""
from functools import partial

from backend.simulation.fake_proxmox.auth import create_ticket
from backend.simulation.fake_proxmox.endpoints import (
    backups,
    cluster_info,
    guest_changes,
    guest_creation,
    guest_metrics,
    guest_reads,
    guest_restores,
    snapshots,
    tasks,
)

GUEST_KINDS = ("lxc", "qemu")
GUEST = "/nodes/{node}/{kind}/{vmid}"
POWER_ACTIONS = ("start", "stop", "shutdown", "reboot")


def for_both_kinds(method, path, handler, **keywords):
    """The routes of a path under lxc and under qemu ({kind} in path) to one handler, given the kind."""
    return {(method, path.replace("{kind}", kind)): partial(handler, kind=kind, **keywords) for kind in GUEST_KINDS}


ROUTES = {
    ("GET", "/version"): cluster_info.get_version,
    ("POST", "/access/ticket"): create_ticket,
    ("GET", "/cluster/nextid"): cluster_info.next_id,
    ("GET", "/cluster/resources"): cluster_info.cluster_resources,
    ("GET", "/nodes"): cluster_info.list_nodes,
    ("GET", "/nodes/{node}/status"): cluster_info.get_node_status,
    ("GET", "/nodes/{node}/storage"): cluster_info.list_storage,
    ("GET", "/nodes/{node}/tasks/{upid}/status"): tasks.get_task_status,
    ("GET", "/nodes/{node}/tasks/{upid}/log"): tasks.get_task_log,
    **for_both_kinds("GET", "/nodes/{node}/{kind}", guest_reads.list_guests),
    **for_both_kinds("GET", GUEST, guest_reads.guest_index),
    **for_both_kinds("GET", f"{GUEST}/config", guest_reads.get_config),
    **for_both_kinds("GET", f"{GUEST}/status/current", guest_reads.get_status),
    **for_both_kinds("GET", f"{GUEST}/rrddata", guest_metrics.rrd_data),
    ("GET", "/nodes/{node}/lxc/{vmid}/interfaces"): guest_reads.lxc_interfaces,
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces"): guest_reads.agent_interfaces,
    ("POST", "/nodes/{node}/lxc"): guest_restores.create_or_restore_lxc,
    ("POST", "/nodes/{node}/qemu"): guest_restores.create_qemu,
    ("POST", "/nodes/{node}/qemu/{vmid}/clone"): guest_creation.clone_qemu,
    **for_both_kinds("PUT", f"{GUEST}/config", guest_changes.update_config),
    ("POST", "/nodes/{node}/qemu/{vmid}/config"): guest_changes.update_qemu_config_async,
    **for_both_kinds("PUT", f"{GUEST}/resize", guest_changes.resize),
    **for_both_kinds("DELETE", GUEST, guest_changes.delete),
    **for_both_kinds("GET", f"{GUEST}/snapshot", snapshots.list_snapshots),
    **for_both_kinds("POST", f"{GUEST}/snapshot", snapshots.create_snapshot),
    **for_both_kinds("DELETE", f"{GUEST}/snapshot/{{snapname}}", snapshots.delete_snapshot),
    **for_both_kinds("POST", f"{GUEST}/snapshot/{{snapname}}/rollback", snapshots.rollback),
    ("POST", "/nodes/{node}/vzdump"): backups.vzdump,
    ("GET", "/nodes/{node}/storage/{storage}/content"): backups.list_content,
    ("DELETE", "/nodes/{node}/storage/{storage}/content/{volume}"): backups.delete_volume,
    ("GET", "/nodes/{node}/storage/{storage}/prunebackups"): backups.prune_dry_run,
    ("DELETE", "/nodes/{node}/storage/{storage}/prunebackups"): backups.prune,
}
for _action in POWER_ACTIONS:
    ROUTES.update(for_both_kinds("POST", f"{GUEST}/status/{_action}", guest_changes.power, action=_action))
