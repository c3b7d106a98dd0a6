"""A fake Proxmox VE API server for tests and local trials, spoken to by the real proxmoxer client.

It listens on 127.0.0.1 over HTTPS (a throwaway CA from trustme; `ca_bundle_path` is what a client
passes as `verify`) and answers like pveproxy: /api2/json paths, `{"data": ...}` bodies, error
messages in the HTTP reason phrase, `400 Parameter verification failed.` with per-parameter
`errors`, API-token and ticket (cookie + CSRF header) authentication, nine-field UPIDs for
asynchronous calls and tasks that end after `task_seconds` with an exit status and a log.

Every request is checked against the platform's subset of the official API schema
(backend/simulation/pve_schema/); a request the real server would reject is answered 400 (or 501 for an
unknown path) and recorded in `schema_violations`, so a test can end with
`fake.assert_no_violations()`.

Snapshots, backups (vzdump to a storage, the storage's content, prune) and restores are served too: by default
every node has `local` (dir), `local-lvm` (lvmthin) and `backup`, an NFS share they all mount (content backup),
so a backup made on one node restores on another. With a guest backend they act on the guests' real files.

State lives in plain classes (Node, Storage, Guest, Snapshot, Backup, Task) behind one lock; tasks advance lazily
(on each request and on each inspection), so the fake runs no threads besides the HTTP server's (and, with a
guest_backend, one per task while the backend does its real work).

    with FakeProxmox(nodes=[Node("pve1"), Node("pve2")]) as fake:
        fake.add_template(9000, node="pve1")
        api = ProxmoxAPI("127.0.0.1", port=fake.port, user="root@pam", token_name="paas",
                         token_value="secret", verify_ssl=fake.ca_bundle_path)
        ...
        fake.assert_no_violations()

Run `python -m backend.simulation.fake_proxmox` for a standalone server to try things by hand.

The modules, in the order a request meets them:
- server.py: the HTTPS server and its thread; hands each request to FakeProxmox.handle.
- fake.py: FakeProxmox: start/stop, seeding and inspection for tests, fault injection, and handle():
  parameters, delay, authentication (auth.py), schema check, injected faults, then the route's handler.
- routes.py: the route table, (method, templated path) -> handler in endpoints/.
- endpoints/: the handlers, by subject (cluster and nodes, tasks, reading, creating and changing guests,
  a guest's statistics, snapshots, backups and storage content, restores).
- retention.py: which backups a prune keeps (Proxmox's prune_mark_backup_group).
- state.py: ClusterState, the cluster behind one lock, and its task clock; model.py: the records it holds.
- faults.py: the injected failures waiting for their requests; protocol.py: requests, replies, errors.
- cli.py: the standalone server (__main__.py).
"""
from backend.simulation.fake_proxmox.cli import main
from backend.simulation.fake_proxmox.endpoints.config_values import NEW_VOLUME
from backend.simulation.fake_proxmox.endpoints.guest_changes import NOT_CONFIG_KEYS
from backend.simulation.fake_proxmox.endpoints.guest_reads import IP_POOL_PREFIX
from backend.simulation.fake_proxmox.fake import FakeProxmox
from backend.simulation.fake_proxmox.faults import MAX_DELAY_SECONDS
from backend.simulation.fake_proxmox.model import (
    BEING_MADE,
    GIB,
    KIB,
    LXC_DISK,
    MIB,
    QEMU_DISK,
    Backup,
    Guest,
    Node,
    Snapshot,
    Storage,
    Task,
    TaskFailure,
    config_digest,
    disk_order,
    format_size,
    parse_size,
)
from backend.simulation.fake_proxmox.protocol import (
    API_PREFIX,
    ApiError,
    Envelope,
    Reply,
    RequestRecord,
    SchemaViolation,
    parameter_error,
)
from backend.simulation.fake_proxmox.retention import mark_backup_group, parse_retention
from backend.simulation.fake_proxmox.routes import ROUTES
from backend.simulation.fake_proxmox.state import MAC_PREFIX, default_storages

__all__ = [
    "API_PREFIX", "BEING_MADE", "GIB", "IP_POOL_PREFIX", "KIB", "LXC_DISK", "MAC_PREFIX", "MAX_DELAY_SECONDS", "MIB",
    "NEW_VOLUME", "NOT_CONFIG_KEYS", "QEMU_DISK", "ROUTES", "ApiError", "Backup", "Envelope", "FakeProxmox", "Guest",
    "Node", "Reply", "RequestRecord", "SchemaViolation", "Snapshot", "Storage", "Task", "TaskFailure",
    "config_digest", "default_storages", "disk_order", "format_size", "main", "mark_backup_group",
    "parameter_error", "parse_retention", "parse_size",
]
