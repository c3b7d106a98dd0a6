"""FakeProxmox: the cluster state served over HTTPS, with what tests call on it (seeding, inspection, fault
injection) and the request pipeline every HTTP request goes through."""
import http
import threading
import time
from urllib.parse import urlsplit

from backend.simulation.fake_proxmox.auth import authenticate
from backend.simulation.fake_proxmox.endpoints.backups import backup_filename
from backend.simulation.fake_proxmox.model import GIB, Backup, Guest
from backend.simulation.fake_proxmox.protocol import (
    API_PREFIX,
    ApiError,
    Reply,
    Request,
    RequestRecord,
    SchemaViolation,
    error_reply,
    parameter_error,
    parse_params,
    success_reply,
)
from backend.simulation.fake_proxmox.routes import ROUTES
from backend.simulation.fake_proxmox.server import HttpsService
from backend.simulation.fake_proxmox.state import ClusterState


class FakeProxmox(ClusterState):
    """A Proxmox VE cluster behind an HTTPS API on loopback, with fault injection."""

    def __init__(self, nodes=None, storages=None, users=None, tokens=None, task_seconds=0.05,
                 agent_delay=0.0, version="9.1.3", schema=None, clustername="fake-cluster", guest_backend=None):
        """Configure the cluster (ClusterState says what each setting is); start() serves it."""
        super().__init__(nodes=nodes, storages=storages, users=users, tokens=tokens, task_seconds=task_seconds,
                         agent_delay=agent_delay, version=version, schema=schema, clustername=clustername,
                         guest_backend=guest_backend)
        self._stopping = threading.Event()
        self._service = None
        self.ca_bundle_path = None
        self.host = "127.0.0.1"
        self.port = None

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self):
        """Start serving HTTPS on 127.0.0.1 (a free port); returns self."""
        if self._service is not None:
            return self
        self._stopping.clear()
        self._service = HttpsService(self, self.host)
        self.ca_bundle_path = self._service.ca_bundle_path
        self.port = self._service.port
        return self

    def stop(self):
        """Stop serving, close open connections, join every thread and remove the CA file."""
        if self._service is None:
            return
        self._stopping.set()
        self._service.stop()
        self._service = None

    def __enter__(self):
        """Start on entry."""
        return self.start()

    def __exit__(self, *exc_info):
        """Stop on exit."""
        self.stop()

    @property
    def url(self):
        """The API base URL, https://127.0.0.1:PORT/api2/json."""
        return f"https://{self.host}:{self.port}{API_PREFIX}"

    # --- seeding and inspection -------------------------------------------------------------------

    def add_template(self, vmid, node="pve1", name="debian-12-cloud", storage="local-lvm", disk_gib=10,
                     **config):
        """Add a QEMU VM template (cloud-init ready, guest agent on) to a node."""
        base = {
            "name": name, "template": 1, "cores": 2, "memory": "2048", "ostype": "l26",
            "scsihw": "virtio-scsi-pci", "boot": "order=scsi0", "agent": "1",
            "scsi0": f"{storage}:base-{vmid}-disk-0,size={disk_gib}G",
            "ide2": f"{storage}:vm-{vmid}-cloudinit,media=cdrom",
            "net0": f"virtio={self.new_mac()},bridge=vmbr0",
            "serial0": "socket", "vga": "serial0",
        }
        base.update(config)
        return self.add_guest(vmid, "qemu", node, base)

    def add_guest(self, vmid, kind, node="pve1", config=None, status="stopped", age=0.0):
        """Add a guest directly (no task); returns the Guest.

        age: how many seconds ago it was made (and, running, started), so that its statistics (rrddata)
        reach back that far.
        """
        with self.lock:
            guest = Guest(int(vmid), kind, node, dict(config or {}))
            if status == "running":
                guest.mark_running()
                guest.started_at -= age
                guest.runs[-1][0] -= age
            guest.created_at -= age
            self.guests[guest.vmid] = guest
            return guest

    def add_backup(self, vmid, kind="lxc", storage="backup", ctime=None, node="pve1", size=GIB, config=None,
                   notes="", protected=False, extension="zst", filename=None):
        """Put a backup on a storage directly (no task, no file), made at ctime (default now); returns the Backup.

        filename: a name of your own (one outside vzdump's scheme is `renamed` to a prune)."""
        with self.lock:
            ctime = int(time.time() if ctime is None else ctime)
            backup = Backup(storage, filename or backup_filename(kind, int(vmid), ctime, extension), int(vmid), kind,
                            ctime, int(size), node, config=dict(config or {}), notes=notes, protected=protected)
            self.backups[backup.volid] = backup
            return backup

    def backup(self, volid):
        """The Backup with this volid, or None (tasks due by now are applied first)."""
        with self.lock:
            self.advance()
            return self.backups.get(volid)

    def storage(self, name):
        """The Storage with this name (change its total to make it full, its prune_backups to give it a
        retention)."""
        with self.lock:
            return next(storage for storage in self.storages if storage.storage == name)

    def guest(self, vmid):
        """The Guest with this id, or None (tasks due by now are applied first)."""
        with self.lock:
            self.advance()
            return self.guests.get(int(vmid))

    def guest_ids(self, include_templates=False):
        """Sorted ids of the guests on the cluster, templates left out unless asked for."""
        with self.lock:
            self.advance()
            return sorted(vmid for vmid, guest in self.guests.items() if include_templates or not guest.is_template)

    def task(self, upid):
        """The Task with this UPID, or None."""
        with self.lock:
            self.advance()
            return self.tasks.get(upid)

    def wait_for_tasks(self, timeout=10.0):
        """Wait until no task is running (bounded); True when all have ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                self.advance()
                if all(task.finished for task in self.tasks.values()):
                    return True
            time.sleep(0.01)
        return False

    def assert_no_violations(self):
        """Fail when any request broke the API schema."""
        if self.schema_violations:
            lines = "\n".join(f"  {violation}" for violation in self.schema_violations)
            raise AssertionError(f"{len(self.schema_violations)} request(s) the real Proxmox VE would "
                                 f"reject:\n{lines}")

    # --- fault injection --------------------------------------------------------------------------

    def fail_next(self, method=None, path=".*", status=500, reason=None, times=1):
        """Answer the next `times` matching requests (path regex, after /api2/json) with an error."""
        reason = reason or http.HTTPStatus(status).phrase
        with self.lock:
            self.pending_faults.add_error(method, path, status, reason, times)

    def drop_next(self, method=None, path=".*", times=1):
        """Close the connection without an answer for the next `times` matching requests."""
        with self.lock:
            self.pending_faults.add_error(method, path, None, "", times)

    def fail_task(self, kind, error="command failed", times=1):
        """Make the next `times` tasks of a type (vzcreate, qmclone, qmstart, vzsnapshot, vzdump, vzrestore...)
        end with `error`; the task changes nothing (a vzdump makes no backup)."""
        with self.lock:
            self.pending_faults.add_task_failures(kind, error, times)

    def delay(self, seconds, method=None, path=".*", times=1):
        """Hold the next `times` matching requests for `seconds` (at most 60) before answering."""
        with self.lock:
            self.pending_faults.add_delay(seconds, method, path, times)

    def set_node_offline(self, name):
        """Take a node offline: listed as offline, its API unreachable (595)."""
        with self.lock:
            self.nodes[name].online = False

    def set_node_online(self, name):
        """Bring a node back online."""
        with self.lock:
            self.nodes[name].online = True

    def reset_faults(self):
        """Drop every pending injected fault, delay and task failure."""
        with self.lock:
            self.pending_faults.clear()
            self.lock_timeouts = 0
            self.nextid_fixed = None
            self.agent_never_answers = False

    # --- request handling -------------------------------------------------------------------------

    def handle(self, method, target, headers, body):
        """Answer one HTTP request (called by the HTTP layer, from any thread)."""
        split = urlsplit(target)
        if not split.path.startswith(API_PREFIX + "/") and split.path != API_PREFIX:
            return error_reply(ApiError(404, "Not Found"))
        path = split.path[len(API_PREFIX):] or "/"
        try:
            params = parse_params(split.query, headers, body)
        except ValueError as exc:
            return error_reply(ApiError(400, f"unable to parse request body - {exc}"))
        self._apply_delay(method, path)

        with self.lock:
            user = None
            try:
                user = authenticate(self, method, path, headers)
                result = self.schema.check(method, path, params)
                if not result.ok:
                    self.schema_violations.append(SchemaViolation(method, path, dict(params), result.errors))
                    if result.endpoint is None:
                        raise ApiError(501, f"Method '{method} {API_PREFIX}{path}' not implemented")
                    raise parameter_error(result.errors)
                fault = self.pending_faults.take_error(method, path)
                if fault:
                    if fault.status is None:
                        self._record(method, path, params, 0, user)
                        return Reply(0, "", {}, drop=True)
                    raise ApiError(fault.status, fault.reason)
                self.advance()
                handler = ROUTES[(result.endpoint.method, result.endpoint.path)]
                request = Request(method, path, result.endpoint, result.path_values, params, user)
                reply = success_reply(handler(self, request))
            except ApiError as exc:
                reply = error_reply(exc)
            self._record(method, path, params, reply.status, user)
            return reply

    def _record(self, method, path, params, status, user):
        """Append to the request log."""
        self.requests.append(RequestRecord(method, path, dict(params), status, user))

    def _apply_delay(self, method, path):
        """Sleep for a matching injected delay (interrupted by stop())."""
        with self.lock:
            delay = self.pending_faults.take_delay(method, path)
        if delay:
            self._stopping.wait(delay.seconds)
