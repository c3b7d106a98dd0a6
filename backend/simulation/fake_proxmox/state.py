"""The cluster's state behind one lock: its nodes, storages, guests and tasks, the users and tokens it
accepts, the behaviour knobs tests turn, and the task clock.

Tasks advance lazily (on each request and on each inspection, by advance()); the fake runs no threads besides
the HTTP server's, except one per task whose real work a guest backend does.
"""
import itertools
import logging
import secrets
import threading
import time

from backend.simulation.fake_proxmox.faults import PendingFaults
from backend.simulation.fake_proxmox.model import GIB, Node, Storage, Task, TaskFailure
from backend.simulation.fake_proxmox.protocol import ApiError
from backend.simulation.pve_schema import default_schema

log = logging.getLogger(__name__)
MAC_PREFIX = "BC:24:11"  # the Proxmox Server Solutions OUI the real server uses for new NICs


def _build(record_class, value):
    """Build record_class from a dict (constructor keywords) or return the object as is."""
    return record_class(**value) if isinstance(value, dict) else value


class ClusterState:
    """A Proxmox VE cluster's state; every read and change happens under `lock`."""

    def __init__(self, nodes=None, storages=None, users=None, tokens=None, task_seconds=0.05,
                 agent_delay=0.0, version="9.1.3", schema=None, clustername="fake-cluster", guest_backend=None):
        """Configure the cluster; nodes and storages are Node/Storage objects or plain dicts.

        guest_backend: what makes the guests real (containers.ProxmoxGuests); None keeps them records only.
        """
        self.guest_backend = guest_backend
        self.nodes = {node.name: node for node in (_build(Node, n) for n in (nodes or [Node("pve1")]))}
        self.storages = [_build(Storage, s) for s in (storages or default_storages())]
        self.users = dict(users or {"root@pam": "password"})
        self.tokens = dict(tokens or {"root@pam!paas": "secret"})
        self.version = version
        self.clustername = clustername
        self.schema = schema or default_schema()

        # behaviour knobs (plain attributes, set them at any time)
        self.task_seconds = task_seconds
        self.task_durations = {}  # per task type, e.g. {"qmclone": 0.5}
        self.task_visibility_delay = 0.0
        self.agent_delay = agent_delay
        self.agent_ip_delay = 0.0  # agent answers, but eth0 has no IPv4 yet
        self.agent_never_answers = False
        self.nextid_fixed = None
        self.lock_timeouts = 0
        self.conflict_as_400 = False  # answer create-on-taken-vmid as 400 errors.vmid instead of 500

        self.schema_violations = []
        self.requests = []
        self.guests = {}
        self.backups = {}  # volid -> Backup
        self.tasks = {}
        self.tickets = {}  # ticket -> {"user": ..., "csrf": ...}
        self.pending_faults = PendingFaults()
        self.lock = threading.RLock()
        self._task_pids = itertools.count(40000 + secrets.randbelow(20000))
        self._mac_numbers = itertools.count(1)

    def online_node(self, name):
        """The Node, or the error the server gives for an unknown or unreachable node."""
        node = self.nodes.get(name)
        if node is None:
            raise ApiError(500, f"no such cluster node '{name}'")
        if not node.online:
            raise ApiError(595, "No route to host")
        return node

    def guest_in_path(self, request, kind):
        """The guest in the path, on that node and of that kind, or the server's 'does not exist'."""
        node = self.online_node(request.path_values["node"]).name
        vmid = int(request.path_values["vmid"])
        guest = self.guests.get(vmid)
        if guest is None or guest.node != node or guest.kind != kind:
            folder = "lxc" if kind == "lxc" else "qemu-server"
            raise ApiError(500, f"Configuration file 'nodes/{node}/{folder}/{vmid}.conf' does not exist")
        return guest

    def storage_on(self, name, node):
        """The Storage `name` as the node sees it, or None (unknown there)."""
        return next((s for s in self.storages if s.storage == name and s.on(node)), None)

    def backups_on(self, storage, node):
        """The backups a node sees on a storage (all of them when it is shared), sorted by volid as PVE lists."""
        found = [backup for backup in self.backups.values()
                 if backup.storage == storage.storage and (storage.shared or backup.node == node)]
        return sorted(found, key=lambda backup: backup.volid.lower())

    def new_mac(self):
        """A fresh MAC address in the Proxmox OUI."""
        number = next(self._mac_numbers)
        return f"{MAC_PREFIX}:{number >> 16 & 0xFF:02X}:{number >> 8 & 0xFF:02X}:{number & 0xFF:02X}"

    # --- tasks ------------------------------------------------------------------------------------

    def start_task(self, node, task_type, guest_id, user, log=(), error=None, on_end=None, work=None):
        """Create a task and return its UPID; on_end(task) runs once it has stopped.

        work (with a guest backend): a callable run in a thread of its own; the task lasts until it returns (the
        lines it returns are added to the log), and fails with its error's words when it raises (a TaskFailure:
        its exit status, after its log lines).
        """
        now = time.monotonic()
        pid = next(self._task_pids)
        pstart = int(now * 100) & 0xFFFFFFFF  # process start in clock ticks, as /proc gives it
        starttime = int(time.time())
        upid = f"UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{task_type}:{guest_id}:{user}:"
        if error:
            exitstatus = error
        else:
            queued = self.pending_faults.take_task_failure(task_type)
            exitstatus = "OK" if queued is None else queued
        task = Task(upid=upid, node=node, type=task_type, id=str(guest_id), user=user, pid=pid,
                    pstart=pstart, starttime=starttime, started=now,
                    duration=self.task_durations.get(task_type, self.task_seconds),
                    visible_at=now + self.task_visibility_delay, exitstatus=exitstatus, log=list(log),
                    on_end=on_end)
        self.tasks[upid] = task
        if work is not None and task.succeeded:
            task.work_done = threading.Event()
            threading.Thread(target=run_task_work, args=(task, work), name=f"fake-{task_type}-{guest_id}",
                             daemon=True).start()
        return upid

    def advance(self):
        """Stop every task whose time has come, in order, and apply its effect."""
        now = time.monotonic()
        due = sorted((task for task in self.tasks.values() if not task.finished and task.ends_at <= now),
                     key=lambda task: task.ends_at)
        for task in due:
            task.finished = True
            if task.on_end:
                task.on_end(task)


def run_task_work(task, work):
    """Run a task's real work (in the task's own thread); the task ends once it returns or raises."""
    try:
        task.log.extend(work() or [])
    except TaskFailure as failure:
        log.warning("task %s failed: %s", task.upid, failure.exitstatus)
        task.log.extend(failure.log)
        task.exitstatus = failure.exitstatus
    except Exception as exc:  # noqa: BLE001 - the task fails with the backend's words, as Proxmox's would
        log.warning("task %s failed: %s", task.upid, exc)
        task.exitstatus = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:300]
    finally:
        task.duration = max(task.duration, time.monotonic() - task.started)
        task.work_done.set()


def default_storages():
    """The storages a cluster has unless told otherwise: local (dir), local-lvm (lvmthin) on every node, and
    backup, an NFS share every node mounts (content backup only), so a backup made on one node restores on
    another."""
    return [
        Storage("local", type="dir", content="iso,vztmpl,backup,snippets", total=100 * GIB),
        Storage("local-lvm", type="lvmthin", content="images,rootdir", total=1024 * GIB),
        Storage("backup", type="nfs", content="backup", total=2048 * GIB, shared=True),
    ]
