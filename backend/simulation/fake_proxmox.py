"""A fake Proxmox VE API server for tests and local trials, spoken to by the real proxmoxer client.

It listens on 127.0.0.1 over HTTPS (a throwaway CA from trustme; `ca_bundle_path` is what a client
passes as `verify`) and answers like pveproxy: /api2/json paths, `{"data": ...}` bodies, error
messages in the HTTP reason phrase, `400 Parameter verification failed.` with per-parameter
`errors`, API-token and ticket (cookie + CSRF header) authentication, nine-field UPIDs for
asynchronous calls and tasks that end after `task_seconds` with an exit status and a log.

Every request is checked against the platform's subset of the official API schema
(backend/simulation/pve_schema.py); a request the real server would reject is answered 400 (or 501 for an
unknown path) and recorded in `schema_violations`, so a test can end with
`fake.assert_no_violations()`.

State lives in plain classes (Node, Storage, Guest, Task) behind one lock; tasks advance lazily
(on each request and on each inspection), so the fake runs no threads besides the HTTP server's.

    with FakeProxmox(nodes=[Node("pve1"), Node("pve2")]) as fake:
        fake.add_template(9000, node="pve1")
        api = ProxmoxAPI("127.0.0.1", port=fake.port, user="root@pam", token_name="paas",
                         token_value="secret", verify_ssl=fake.ca_bundle_path)
        ...
        fake.assert_no_violations()

Run `python -m backend.simulation.fake_proxmox --port 8006` for a standalone server to try things by hand.
"""
import argparse
import hashlib
import http
import itertools
import json
import logging
import re
import secrets
import shutil
import socket
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import trustme

from backend.simulation.pve_schema import (
    default_schema,
    format_property_string,
    parse_boolean,
    parse_property_string,
    split_list,
)

log = logging.getLogger(__name__)
KIB, MIB, GIB = 1024, 1024 ** 2, 1024 ** 3
API_PREFIX = "/api2/json"
MAX_DELAY_SECONDS = 60.0
IP_POOL_PREFIX = "10.10.0."
MAC_PREFIX = "BC:24:11"  # the Proxmox Server Solutions OUI the real server uses for new NICs
LXC_DISK = re.compile(r"^(rootfs|mp\d+)$")
QEMU_DISK = re.compile(r"^(ide|sata|scsi|virtio)\d+$|^(efidisk0|tpmstate0)$")
NEW_VOLUME = re.compile(r"^(?P<storage>[a-z][a-z0-9\-_.]*[a-z0-9]):(?P<size>\d+(\.\d+)?)$", re.I)
NOT_CONFIG_KEYS = {"delete", "digest", "force", "revert", "skiplock", "background_delay"}


# Locks under which a guest's config is still being written (pve-container create, qemu-server clone).
BEING_MADE = ("create", "clone")


class ApiError(Exception):
    """An error answer: HTTP status, reason phrase (the message) and optional per-parameter errors."""

    def __init__(self, status, reason, errors=None):
        """Keep the parts of the answer."""
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.errors = errors


def parameter_error(errors):
    """The 400 the server raises for a parameter problem found by the handler itself."""
    return ApiError(400, "Parameter verification failed.", errors)


# --- state model ---------------------------------------------------------------------------------

class Node:
    """A cluster node: capacity, a base load, and whether it answers."""

    def __init__(self, name, maxmem=64 * GIB, maxdisk=500 * GIB, maxcpu=16, online=True,
                 mem=2 * GIB, disk=10 * GIB):
        """Describe a node; `mem` and `disk` are its own use before any guest."""
        self.name = name
        self.maxmem = maxmem
        self.maxdisk = maxdisk
        self.maxcpu = maxcpu
        self.online = online
        self.base_mem = mem
        self.base_disk = disk
        self.booted_at = time.time() - 86400


class Storage:
    """A storage: its content types and capacity, on every node unless `nodes` names some."""

    def __init__(self, storage, type="lvmthin", content="images,rootdir", total=1024 * GIB,
                 shared=False, nodes=None):
        """Describe a storage as /nodes/{node}/storage lists it."""
        self.storage = storage
        self.type = type
        self.content = content
        self.total = total
        self.shared = shared
        self.nodes = set(nodes) if nodes else None

    def on(self, node):
        """True when the storage is available on the node."""
        return self.nodes is None or node in self.nodes

    def holds(self, content):
        """True when the storage accepts a content type (rootdir, images, vztmpl...)."""
        return content in self.content.split(",")


class Guest:
    """An LXC container or a QEMU VM: config (typed values), run state, lock, address."""

    def __init__(self, vmid, kind, node, config):
        """A stopped, unlocked guest."""
        self.vmid = vmid
        self.kind = kind  # "lxc" or "qemu"
        self.node = node
        self.config = config
        self.status = "stopped"
        self.lock = None
        self.started_at = None
        self.ipv4 = None

    @property
    def label(self):
        """CT or VM, as the server's messages name the guest."""
        return "CT" if self.kind == "lxc" else "VM"

    @property
    def name(self):
        """The guest's display name (hostname for containers)."""
        key = "hostname" if self.kind == "lxc" else "name"
        return str(self.config.get(key, f"{self.label}{self.vmid}"))

    @property
    def is_template(self):
        """True for a template (template=1 in its config)."""
        return str(self.config.get("template", 0)) == "1"

    @property
    def cores(self):
        """Number of virtual CPUs."""
        return int(self.config.get("cores", 1)) * int(self.config.get("sockets", 1))

    @property
    def maxmem(self):
        """Configured memory in bytes (qemu's memory may be a `current=N` property string)."""
        value = str(self.config.get("memory", 512))
        match = re.search(r"(?:^|current=)(\d+)", value)
        return int(match.group(1) if match else 512) * MIB

    def disks(self):
        """{config key: size in bytes} of the guest's disks (CD-ROM drives left out)."""
        pattern = LXC_DISK if self.kind == "lxc" else QEMU_DISK
        sizes = {}
        for key, value in self.config.items():
            if pattern.match(key) and "media=cdrom" not in str(value):
                match = re.search(r"(?:^|,)size=(\d+(?:\.\d+)?)([KMGT]?)", str(value))
                sizes[key] = parse_size(match.group(1) + match.group(2)) if match else 0
        return sizes

    @property
    def maxdisk(self):
        """Size of the root disk (rootfs, or the first qemu disk) in bytes."""
        disks = self.disks()
        if self.kind == "lxc":
            return disks.get("rootfs", 0)
        return next((disks[k] for k in sorted(disks, key=disk_order)), 0)

    def agent_enabled(self):
        """True when the VM's config enables the QEMU guest agent."""
        value = str(self.config.get("agent", "0"))
        first = value.split(",")[0]
        enabled = first.split("=", 1)[1] if first.startswith("enabled=") else first
        return parse_boolean(enabled) == 1

    def static_ipv4(self):
        """The static IPv4 (address, prefix) the config gives eth0, or None for DHCP."""
        value = str(self.config.get("net0" if self.kind == "lxc" else "ipconfig0", ""))
        match = re.search(r"(?:^|,)ip=(\d+\.\d+\.\d+\.\d+)/(\d+)", value)
        return (match.group(1), int(match.group(2))) if match else None

    def mac(self):
        """The MAC address of net0."""
        match = re.search(r"([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5})", str(self.config.get("net0", "")))
        return match.group(1) if match else "00:00:00:00:00:00"


@dataclass
class Task:
    """A worker task: runs from `started` for `duration` seconds, then ends with `exitstatus`."""

    upid: str
    node: str
    type: str
    id: str
    user: str
    pid: int
    pstart: int
    starttime: int
    started: float
    duration: float
    visible_at: float
    exitstatus: str = "OK"
    log: list = field(default_factory=list)
    on_end: object = None
    finished: bool = False
    work_done: object = None  # a threading.Event while real work (a guest backend's) runs for this task

    @property
    def ends_at(self):
        """Monotonic time at which the task stops (not before its real work, if it has any, is done)."""
        if self.work_done is not None and not self.work_done.is_set():
            return float("inf")
        return self.started + self.duration

    @property
    def succeeded(self):
        """True for OK and for WARNINGS: N, which the server counts as success."""
        return self.exitstatus == "OK" or self.exitstatus.startswith("WARNINGS")

    def log_lines(self):
        """The log as it stands: the work lines, then the TASK line once stopped."""
        if not self.finished:
            return list(self.log)
        if self.exitstatus == "OK":
            last = "TASK OK"
        elif self.exitstatus.startswith("WARNINGS"):
            last = f"TASK {self.exitstatus}"
        else:
            last = f"TASK ERROR: {self.exitstatus}"
        return [*self.log, last]


@dataclass
class SchemaViolation:
    """A request the real server would have refused: what was sent and why it is wrong."""

    method: str
    path: str
    params: dict
    errors: dict

    def __str__(self):
        """One line per problem."""
        problems = "; ".join(f"{k}: {v}" for k, v in sorted(self.errors.items()))
        return f"{self.method} {self.path} {self.params!r}: {problems}"


@dataclass
class RequestRecord:
    """A request the fake answered, for tests that look at what the client sent."""

    method: str
    path: str
    params: dict
    status: int
    user: str | None


@dataclass
class _Fault:
    """An injected failure (or dropped connection) for requests matching method and path."""

    method: str | None
    path: re.Pattern
    status: int | None
    reason: str
    remaining: int
    seconds: float = 0.0

    def matches(self, method, path):
        """True when the fault applies to this request."""
        return self.remaining > 0 and self.method in (None, method) and bool(self.path.search(path))


@dataclass
class Envelope:
    """A handler result with attributes beside `data` in the body (the task log's `total`)."""

    data: object
    extra: dict


@dataclass
class Reply:
    """What the HTTP layer writes back."""

    status: int
    reason: str
    body: dict
    drop: bool = False


def parse_size(text):
    """Bytes for a PVE disk size such as 8G, 512M or 10 (bytes)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", text)
    if not match:
        raise ValueError(f"bad size {text!r}")
    unit = {"": 1, "K": KIB, "M": MIB, "G": GIB, "T": 1024 * GIB}[match.group(2)]
    return int(float(match.group(1)) * unit)


def format_size(size):
    """The shortest exact PVE spelling of a size in bytes (PVE::JSONSchema::format_size)."""
    for unit, factor in (("T", 1024 * GIB), ("G", GIB), ("M", MIB), ("K", KIB)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def disk_order(key):
    """Sort key putting scsi0 before scsi1, virtio0 before sata0... (boot disk first)."""
    match = re.match(r"([a-z]+)(\d+)", key)
    bus_rank = {"scsi": 0, "virtio": 1, "sata": 2, "ide": 3, "efidisk": 4, "tpmstate": 5}
    return (bus_rank.get(match.group(1), 9), int(match.group(2))) if match else (9, 0)


def config_digest(config):
    """SHA1 of the config, as GET config returns it in `digest`."""
    text = "\n".join(f"{k}: {v}" for k, v in sorted(config.items()))
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()  # Proxmox's digest format


# --- the fake ------------------------------------------------------------------------------------

class FakeProxmox:
    """A Proxmox VE cluster behind an HTTPS API on loopback, with fault injection."""

    def __init__(self, nodes=None, storages=None, users=None, tokens=None, task_seconds=0.05,
                 agent_delay=0.0, version="9.1.3", schema=None, clustername="fake-cluster", guest_backend=None):
        """Configure the cluster; nodes and storages are Node/Storage objects or plain dicts.

        guest_backend: what makes the guests real (containers.ProxmoxGuests); None keeps them records only.
        """
        self.guest_backend = guest_backend
        self.nodes = {n.name: n for n in (self._as(Node, n) for n in (nodes or [Node("pve1")]))}
        self.storages = [self._as(Storage, s) for s in (storages or [
            Storage("local", type="dir", content="iso,vztmpl,backup,snippets", total=100 * GIB),
            Storage("local-lvm", type="lvmthin", content="images,rootdir", total=1024 * GIB),
        ])]
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
        self.tasks = {}
        self._tickets = {}
        self._faults = []
        self._delays = []
        self._task_failures = {}
        self._pids = itertools.count(40000 + secrets.randbelow(20000))
        self._macs = itertools.count(1)
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server = None
        self._thread = None
        self._tmpdir = None
        self.ca_bundle_path = None
        self.host = "127.0.0.1"
        self.port = None

    @staticmethod
    def _as(cls, value):
        """Build cls from a dict (constructor keywords) or return the object as is."""
        return cls(**value) if isinstance(value, dict) else value

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self):
        """Start serving HTTPS on 127.0.0.1 (a free port); returns self."""
        if self._server is not None:
            return self
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        self._tmpdir = tempfile.mkdtemp(prefix="fake-pve-")
        self.ca_bundle_path = str(Path(self._tmpdir) / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_bundle_path)
        self._stopping.clear()
        self._server = _TLSServer((self.host, 0), _Handler, context, self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake-pve-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stop serving, close open connections, join every thread and remove the CA file."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._thread.join(timeout=10)
        self._server = self._thread = None
        shutil.rmtree(self._tmpdir, ignore_errors=True)
        self._tmpdir = None

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
            "net0": f"virtio={self._new_mac()},bridge=vmbr0",
            "serial0": "socket", "vga": "serial0",
        }
        base.update(config)
        return self.add_guest(vmid, "qemu", node, base)

    def add_guest(self, vmid, kind, node="pve1", config=None, status="stopped"):
        """Add a guest directly (no task); returns the Guest."""
        with self._lock:
            guest = Guest(int(vmid), kind, node, dict(config or {}))
            if status == "running":
                self._set_running(guest)
            self.guests[guest.vmid] = guest
            return guest

    def guest(self, vmid):
        """The Guest with this id, or None (tasks due by now are applied first)."""
        with self._lock:
            self._advance()
            return self.guests.get(int(vmid))

    def guest_ids(self, include_templates=False):
        """Sorted ids of the guests on the cluster, templates left out unless asked for."""
        with self._lock:
            self._advance()
            return sorted(v for v, g in self.guests.items() if include_templates or not g.is_template)

    def task(self, upid):
        """The Task with this UPID, or None."""
        with self._lock:
            self._advance()
            return self.tasks.get(upid)

    def wait_for_tasks(self, timeout=10.0):
        """Wait until no task is running (bounded); True when all have ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                self._advance()
                if all(t.finished for t in self.tasks.values()):
                    return True
            time.sleep(0.01)
        return False

    def assert_no_violations(self):
        """Fail when any request broke the API schema."""
        if self.schema_violations:
            lines = "\n".join(f"  {v}" for v in self.schema_violations)
            raise AssertionError(f"{len(self.schema_violations)} request(s) the real Proxmox VE would "
                                 f"reject:\n{lines}")

    # --- fault injection --------------------------------------------------------------------------

    def fail_next(self, method=None, path=".*", status=500, reason=None, times=1):
        """Answer the next `times` matching requests (path regex, after /api2/json) with an error."""
        reason = reason or http.HTTPStatus(status).phrase
        with self._lock:
            self._faults.append(_Fault(method, re.compile(path), status, reason, times))

    def drop_next(self, method=None, path=".*", times=1):
        """Close the connection without an answer for the next `times` matching requests."""
        with self._lock:
            self._faults.append(_Fault(method, re.compile(path), None, "", times))

    def fail_task(self, kind, error="command failed", times=1):
        """Make the next `times` tasks of a type (vzcreate, qmclone, qmstart...) end with `error`."""
        with self._lock:
            self._task_failures.setdefault(kind, []).extend([error] * times)

    def delay(self, seconds, method=None, path=".*", times=1):
        """Hold the next `times` matching requests for `seconds` (at most 60) before answering."""
        with self._lock:
            self._delays.append(_Fault(method, re.compile(path), None, "", times,
                                       seconds=min(float(seconds), MAX_DELAY_SECONDS)))

    def set_node_offline(self, name):
        """Take a node offline: listed as offline, its API unreachable (595)."""
        with self._lock:
            self.nodes[name].online = False

    def set_node_online(self, name):
        """Bring a node back online."""
        with self._lock:
            self.nodes[name].online = True

    def reset_faults(self):
        """Drop every pending injected fault, delay and task failure."""
        with self._lock:
            self._faults.clear()
            self._delays.clear()
            self._task_failures.clear()
            self.lock_timeouts = 0
            self.nextid_fixed = None
            self.agent_never_answers = False

    # --- request handling -------------------------------------------------------------------------

    def handle(self, method, target, headers, body):
        """Answer one HTTP request (called by the HTTP layer, from any thread)."""
        split = urlsplit(target)
        if not split.path.startswith(API_PREFIX + "/") and split.path != API_PREFIX:
            return self._error_reply(ApiError(404, "Not Found"))
        path = split.path[len(API_PREFIX):] or "/"
        try:
            params = self._parse_params(split.query, headers, body)
        except ValueError as exc:
            return self._error_reply(ApiError(400, f"unable to parse request body - {exc}"))
        self._apply_delay(method, path)

        with self._lock:
            user = None
            try:
                user = self._authenticate(method, path, headers)
                result = self.schema.check(method, path, params)
                if not result.ok:
                    self.schema_violations.append(SchemaViolation(method, path, dict(params), result.errors))
                    if result.endpoint is None:
                        raise ApiError(501, f"Method '{method} {API_PREFIX}{path}' not implemented")
                    raise parameter_error(result.errors)
                fault = next((f for f in self._faults if f.matches(method, path)), None)
                if fault:
                    fault.remaining -= 1
                    if fault.status is None:
                        reply = Reply(0, "", {}, drop=True)
                        self._record(method, path, params, 0, user)
                        return reply
                    raise ApiError(fault.status, fault.reason)
                self._advance()
                handler = getattr(self, ROUTES[(result.endpoint.method, result.endpoint.path)])
                request = _Request(method, path, result.endpoint, result.path_values, params, user)
                data = handler(request)
                body = {"data": data.data, **data.extra} if isinstance(data, Envelope) else {"data": data}
                reply = Reply(200, "OK", body)
            except ApiError as exc:
                reply = self._error_reply(exc)
            self._record(method, path, params, reply.status, user)
            return reply

    def _record(self, method, path, params, status, user):
        """Append to the request log."""
        self.requests.append(RequestRecord(method, path, dict(params), status, user))

    @staticmethod
    def _error_reply(error):
        """The reply for an ApiError: reason phrase, `data: null`, `message`, maybe `errors`."""
        body = {"data": None, "message": f"{error.reason}\n"}
        if error.errors is not None:
            body["errors"] = error.errors
        return Reply(error.status, error.reason, body)

    @staticmethod
    def _parse_params(query, headers, body):
        """Query and body parameters (form-encoded or JSON); a repeated key joins with NUL."""
        pairs = parse_qsl(query, keep_blank_values=True)
        content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if body and content_type == "application/json":
            decoded = json.loads(body.decode("utf-8"))
            if not isinstance(decoded, dict):
                raise ValueError("JSON body is not an object")
            pairs += [(k, v) for k, v in decoded.items() if v is not None]
        elif body:
            pairs += parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        params = {}
        for key, value in pairs:
            params[key] = f"{params[key]}\0{value}" if key in params else value
        return params

    def _apply_delay(self, method, path):
        """Sleep for a matching injected delay (interrupted by stop())."""
        with self._lock:
            delay = next((d for d in self._delays if d.matches(method, path)), None)
            if delay:
                delay.remaining -= 1
        if delay:
            self._stopping.wait(delay.seconds)

    # --- authentication ---------------------------------------------------------------------------

    def _authenticate(self, method, path, headers):
        """The user (or user!token) a request acts as; raise 401 when it has no valid credentials."""
        if method == "POST" and path == "/access/ticket":
            return None
        authorization = headers.get("Authorization") or ""
        if authorization.startswith("PVEAPIToken="):
            match = re.fullmatch(r"PVEAPIToken=([^!=\s]+![^=\s]+)[=:](.+)", authorization.strip())
            if not match or self.tokens.get(match.group(1)) != match.group(2):
                raise ApiError(401, "invalid token value!")
            return match.group(1)
        ticket = self._cookie(headers, "PVEAuthCookie")
        if not ticket:
            raise ApiError(401, "No ticket")
        session = self._tickets.get(ticket)
        if session is None:
            raise ApiError(401, "permission denied - invalid PVE ticket")
        if method != "GET" and headers.get("CSRFPreventionToken") != session["csrf"]:
            raise ApiError(401, "Permission denied - invalid csrf token")
        return session["user"]

    @staticmethod
    def _cookie(headers, name):
        """The value of one cookie from the Cookie header, or None."""
        for part in (headers.get("Cookie") or "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
        return None

    def create_ticket(self, request):
        """POST /access/ticket: a ticket and CSRF token for a valid user and password (or ticket)."""
        username, params = request.params["username"], request.params
        if "@" not in username and params.get("realm"):
            username = f"{username}@{params['realm']}"
        password = params["password"]
        renewing = self._tickets.get(password, {}).get("user") == username
        if not renewing and self.users.get(username) != password:
            raise ApiError(401, "authentication failure")
        stamp = f"{int(time.time()):08X}"
        ticket = f"PVE:{username}:{stamp}::{secrets.token_hex(32)}"
        csrf = f"{stamp}:{secrets.token_hex(16)}"
        self._tickets[ticket] = {"user": username, "csrf": csrf}
        return {"username": username, "ticket": ticket, "CSRFPreventionToken": csrf,
                "clustername": self.clustername, "cap": {}}

    # --- tasks ------------------------------------------------------------------------------------

    def _start_task(self, node, kind, guest_id, user, log=(), error=None, on_end=None, work=None):
        """Create a task and return its UPID; on_end(task) runs once it has stopped.

        work (with a guest backend): a callable run in a thread of its own; the task lasts until it returns,
        and fails with its error's words when it raises.
        """
        now = time.monotonic()
        pid = next(self._pids)
        pstart = int(now * 100) & 0xFFFFFFFF  # process start in clock ticks, as /proc gives it
        starttime = int(time.time())
        upid = f"UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{kind}:{guest_id}:{user}:"
        queued = self._task_failures.get(kind)
        exitstatus = error or (queued.pop(0) if queued else "OK")
        task = Task(upid=upid, node=node, type=kind, id=str(guest_id), user=user, pid=pid,
                    pstart=pstart, starttime=starttime, started=now,
                    duration=self.task_durations.get(kind, self.task_seconds),
                    visible_at=now + self.task_visibility_delay, exitstatus=exitstatus, log=list(log),
                    on_end=on_end)
        self.tasks[upid] = task
        if work is not None and task.succeeded:
            task.work_done = threading.Event()
            threading.Thread(target=self._run_work, args=(task, work), name=f"fake-{kind}-{guest_id}",
                             daemon=True).start()
        return upid

    @staticmethod
    def _run_work(task, work):
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - the task fails with the backend's words, as Proxmox's would
            log.warning("task %s failed: %s", task.upid, exc)
            task.exitstatus = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:300]
        finally:
            task.duration = max(task.duration, time.monotonic() - task.started)
            task.work_done.set()

    def _advance(self):
        """Stop every task whose time has come, in order, and apply its effect."""
        now = time.monotonic()
        due = sorted((t for t in self.tasks.values() if not t.finished and t.ends_at <= now),
                     key=lambda t: t.ends_at)
        for task in due:
            task.finished = True
            if task.on_end:
                task.on_end(task)

    def _find_task(self, request):
        """The task named in the path, visible on that node; 400 'no such task' otherwise."""
        upid = request.path_values["upid"]
        if len(upid.split(":")) != 9 or not upid.startswith("UPID:"):
            raise parameter_error({"upid": "unable to parse worker upid"})
        task = self.tasks.get(upid)
        if task is None or task.node != request.path_values["node"] or time.monotonic() < task.visible_at:
            raise parameter_error({"upid": "no such task"})
        return task

    def get_task_status(self, request):
        """GET /nodes/{node}/tasks/{upid}/status."""
        self._online_node(request.path_values["node"])
        task = self._find_task(request)
        user, _, token = task.user.partition("!")
        status = {"upid": task.upid, "node": task.node, "pid": task.pid, "pstart": task.pstart,
                  "starttime": task.starttime, "type": task.type, "id": task.id, "user": user,
                  "status": "stopped" if task.finished else "running"}
        if token:
            status["tokenid"] = token
        if task.finished:
            status["exitstatus"] = task.exitstatus
        return status

    def get_task_log(self, request):
        """GET /nodes/{node}/tasks/{upid}/log, with start/limit and the `total` attribute."""
        self._online_node(request.path_values["node"])
        task = self._find_task(request)
        lines = task.log_lines()
        start = int(request.params.get("start", 0))
        limit = int(request.params.get("limit", 50))
        page = [{"n": start + i + 1, "t": text} for i, text in enumerate(lines[start:start + limit])]
        return Envelope(page, {"total": len(lines)})

    # --- nodes, cluster, storage ------------------------------------------------------------------

    def _online_node(self, name):
        """The Node, or the error the server gives for an unknown or unreachable node."""
        node = self.nodes.get(name)
        if node is None:
            raise ApiError(500, f"no such cluster node '{name}'")
        if not node.online:
            raise ApiError(595, "No route to host")
        return node

    def _node_usage(self, node):
        """(memory used, disk used, cpu fraction) of a node, from its base load and guests."""
        guests = [g for g in self.guests.values() if g.node == node.name]
        mem = node.base_mem + sum(g.maxmem for g in guests if g.status == "running")
        disk = node.base_disk + sum(sum(g.disks().values()) for g in guests)
        running = sum(g.cores for g in guests if g.status == "running")
        return mem, disk, round(min(1.0, 0.01 + 0.02 * running / max(node.maxcpu, 1)), 4)

    def _node_entry(self, node):
        """A node as /nodes and /cluster/resources list it."""
        entry = {"node": node.name, "id": f"node/{node.name}", "type": "node",
                 "status": "online" if node.online else "offline"}
        if node.online:
            mem, disk, cpu = self._node_usage(node)
            entry.update({"cpu": cpu, "maxcpu": node.maxcpu, "mem": mem, "maxmem": node.maxmem,
                          "disk": disk, "maxdisk": node.maxdisk, "level": "",
                          "uptime": int(time.time() - node.booted_at),
                          "ssl_fingerprint": "00:" * 31 + "00"})
        return entry

    def get_version(self, request):
        """GET /version."""
        return {"version": self.version, "release": self.version.rsplit(".", 1)[0],
                "repoid": "0123abcd", "console": "xtermjs"}

    def list_nodes(self, request):
        """GET /nodes."""
        return [self._node_entry(n) for n in self.nodes.values()]

    def get_node_status(self, request):
        """GET /nodes/{node}/status."""
        node = self._online_node(request.path_values["node"])
        mem, disk, cpu = self._node_usage(node)
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
            "pveversion": f"pve-manager/{self.version}/0123abcd", "kversion": "Linux 6.14.8-2-pve",
            "current-kernel": {"sysname": "Linux", "release": "6.14.8-2-pve", "machine": "x86_64",
                               "version": "#1 SMP PREEMPT_DYNAMIC PMX 6.14.8-2"},
            "boot-info": {"mode": "efi", "secureboot": 0}, "ksm": {"shared": 0},
        }

    def _storage_used(self, storage, node):
        """Bytes the guests' disks take on a storage of a node (all nodes when shared)."""
        total = 0
        for guest in self.guests.values():
            if not storage.shared and guest.node != node:
                continue
            for key, size in guest.disks().items():
                if str(guest.config[key]).startswith(f"{storage.storage}:"):
                    total += size
        return total

    def list_storage(self, request):
        """GET /nodes/{node}/storage, filtered by content, storage and enabled."""
        node = self._online_node(request.path_values["node"]).name
        params = request.params
        result = []
        for storage in self.storages:
            if not storage.on(node):
                continue
            if params.get("content") and not all(storage.holds(c) for c in split_list(params["content"])):
                continue
            if params.get("storage") and params["storage"] != storage.storage:
                continue
            used = self._storage_used(storage, node)
            result.append({"storage": storage.storage, "type": storage.type, "content": storage.content,
                           "active": 1, "enabled": 1, "shared": int(storage.shared), "total": storage.total,
                           "used": used, "avail": storage.total - used,
                           "used_fraction": round(used / storage.total, 6) if storage.total else 0})
        return result

    def next_id(self, request):
        """GET /cluster/nextid: the lowest free id >= 100 (not reserved), or check a given one."""
        if "vmid" in request.params:
            vmid = int(request.params["vmid"])
            if vmid in self.guests:
                raise parameter_error({"vmid": f"VM {vmid} already exists"})
            return str(vmid)
        if self.nextid_fixed is not None:
            return str(self.nextid_fixed)
        return str(next(i for i in itertools.count(100) if i not in self.guests))

    def _guest_resource(self, guest):
        """A guest as /cluster/resources lists it."""
        node = self.nodes.get(guest.node)
        entry = {"id": f"{guest.kind}/{guest.vmid}", "type": guest.kind, "vmid": guest.vmid,
                 "node": guest.node, "name": guest.name, "template": int(guest.is_template)}
        if node is None or not node.online:
            entry["status"] = "unknown"
            return entry
        entry.update(self._guest_status(guest))
        entry["maxcpu"] = guest.cores
        entry.pop("ha", None)
        entry.pop("qmpstatus", None)
        if guest.lock in BEING_MADE:
            # Like the real server: until create/clone ends, the config file holds little more than the
            # lock, so the guest has no name and no tags yet.
            entry.pop("name", None)
            entry.pop("tags", None)
        return entry

    def cluster_resources(self, request):
        """GET /cluster/resources, optionally by type (vm, node, storage)."""
        kind = request.params.get("type")
        result = []
        if kind in (None, "vm"):
            result += [self._guest_resource(g) for g in sorted(self.guests.values(), key=lambda g: g.vmid)]
        if kind in (None, "node"):
            result += [self._node_entry(n) for n in self.nodes.values()]
        if kind in (None, "storage"):
            for node in self.nodes.values():
                for storage in (s for s in self.storages if s.on(node.name)):
                    used = self._storage_used(storage, node.name)
                    result.append({"id": f"storage/{node.name}/{storage.storage}", "type": "storage",
                                   "node": node.name, "storage": storage.storage, "plugintype": storage.type,
                                   "content": storage.content, "shared": int(storage.shared),
                                   "status": "available" if node.online else "unknown",
                                   "disk": used, "maxdisk": storage.total})
        return result

    # --- guests: reading --------------------------------------------------------------------------

    def _guest(self, request, kind):
        """The guest in the path, on that node and of that kind, or the server's 'does not exist'."""
        node = self._online_node(request.path_values["node"]).name
        vmid = int(request.path_values["vmid"])
        guest = self.guests.get(vmid)
        if guest is None or guest.node != node or guest.kind != kind:
            folder = "lxc" if kind == "lxc" else "qemu-server"
            raise ApiError(500, f"Configuration file 'nodes/{node}/{folder}/{vmid}.conf' does not exist")
        return guest

    def _guest_status(self, guest):
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

    def list_lxc(self, request):
        """GET /nodes/{node}/lxc."""
        return self._list_guests(request, "lxc")

    def list_qemu(self, request):
        """GET /nodes/{node}/qemu."""
        return self._list_guests(request, "qemu")

    def _list_guests(self, request, kind):
        """The guests of one kind on a node."""
        node = self._online_node(request.path_values["node"]).name
        guests = sorted((g for g in self.guests.values() if g.node == node and g.kind == kind),
                        key=lambda g: g.vmid)
        return [{k: v for k, v in self._guest_status(g).items() if k != "ha"} for g in guests]

    def lxc_index(self, request):
        """GET /nodes/{node}/lxc/{vmid}: the directory index."""
        self._guest(request, "lxc")
        return [{"subdir": s} for s in ("config", "status", "vncproxy", "termproxy", "migrate", "clone",
                                        "rrd", "rrddata", "firewall", "snapshot", "resize", "interfaces")]

    def qemu_index(self, request):
        """GET /nodes/{node}/qemu/{vmid}: the directory index."""
        self._guest(request, "qemu")
        return [{"subdir": s} for s in ("config", "pending", "status", "unlink", "vncproxy", "termproxy",
                                        "migrate", "resize", "move", "rrd", "rrddata", "monitor", "agent",
                                        "snapshot", "spiceproxy", "sendkey", "firewall")]

    def lxc_config(self, request):
        """GET /nodes/{node}/lxc/{vmid}/config."""
        return self._read_config(self._guest(request, "lxc"))

    def qemu_config(self, request):
        """GET /nodes/{node}/qemu/{vmid}/config."""
        return self._read_config(self._guest(request, "qemu"))

    @staticmethod
    def _read_config(guest):
        """The config with its digest (and lock, as the real file carries it)."""
        config = dict(guest.config) if guest.lock not in BEING_MADE else {}
        if guest.lock:
            config["lock"] = guest.lock
        config["digest"] = config_digest(guest.config)
        return config

    def lxc_status(self, request):
        """GET /nodes/{node}/lxc/{vmid}/status/current."""
        return self._guest_status(self._guest(request, "lxc"))

    def qemu_status(self, request):
        """GET /nodes/{node}/qemu/{vmid}/status/current."""
        return self._guest_status(self._guest(request, "qemu"))

    def lxc_interfaces(self, request):
        """GET /nodes/{node}/lxc/{vmid}/interfaces: null while stopped, lo + eth0 once running."""
        guest = self._guest(request, "lxc")
        if guest.status != "running":
            return None
        address, prefix = self._address(guest)
        mac = guest.mac().lower()
        return [
            {"name": "lo", "hwaddr": "00:00:00:00:00:00", "hardware-address": "00:00:00:00:00:00",
             "inet": "127.0.0.1/8", "inet6": "::1/128",
             "ip-addresses": [{"ip-address-type": "inet", "ip-address": "127.0.0.1", "prefix": 8},
                              {"ip-address-type": "inet6", "ip-address": "::1", "prefix": 128}]},
            {"name": "eth0", "hwaddr": mac, "hardware-address": mac, "inet": f"{address}/{prefix}",
             "inet6": f"{self._link_local(mac)}/64",
             "ip-addresses": [{"ip-address-type": "inet", "ip-address": address, "prefix": prefix},
                              {"ip-address-type": "inet6", "ip-address": self._link_local(mac),
                               "prefix": 64}]},
        ]

    def agent_interfaces(self, request):
        """GET .../qemu/{vmid}/agent/network-get-interfaces: the guest agent's answer once it runs."""
        guest = self._guest(request, "qemu")
        if guest.status != "running":
            raise ApiError(500, f"VM {guest.vmid} is not running")
        if not guest.agent_enabled():
            raise ApiError(500, "No QEMU guest agent configured")
        up_for = time.monotonic() - guest.started_at
        if self.agent_never_answers or up_for < self.agent_delay:
            raise ApiError(500, "QEMU guest agent is not running")
        mac = guest.mac().lower()
        eth0 = [{"ip-address-type": "ipv6", "ip-address": self._link_local(mac), "prefix": 64}]
        if up_for >= self.agent_delay + self.agent_ip_delay:
            address, prefix = self._address(guest)
            eth0.insert(0, {"ip-address-type": "ipv4", "ip-address": address, "prefix": prefix})
        stats = {"rx-bytes": 1024, "rx-packets": 10, "rx-errs": 0, "rx-dropped": 0,
                 "tx-bytes": 512, "tx-packets": 5, "tx-errs": 0, "tx-dropped": 0}
        return {"result": [
            {"name": "lo", "hardware-address": "00:00:00:00:00:00", "statistics": stats,
             "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8},
                              {"ip-address-type": "ipv6", "ip-address": "::1", "prefix": 128}]},
            {"name": "eth0", "hardware-address": mac, "statistics": stats, "ip-addresses": eth0},
        ]}

    def _address(self, guest):
        """(IPv4, prefix) of a running guest: a real guest's own, its static address, else one from 10.10.0.0/24."""
        real = self.guest_backend.address(guest) if self.guest_backend else None
        if real:
            return real
        static = guest.static_ipv4()
        if static:
            return static
        if guest.ipv4 is None:
            taken = {g.ipv4 for g in self.guests.values()}
            pool = (f"{IP_POOL_PREFIX}{i}" for i in range(2, 255))
            guest.ipv4 = next((address for address in pool if address not in taken), f"{IP_POOL_PREFIX}254")
        return guest.ipv4, 24

    @staticmethod
    def _link_local(mac):
        """The EUI-64 link-local IPv6 address of a MAC."""
        octets = [int(x, 16) for x in mac.split(":")]
        octets[0] ^= 0x02
        eui = octets[:3] + [0xFF, 0xFE] + octets[3:]
        groups = [f"{eui[i] << 8 | eui[i + 1]:x}" for i in range(0, 8, 2)]
        return "fe80::" + ":".join(groups)

    # --- guests: creating -------------------------------------------------------------------------

    def _new_mac(self):
        """A fresh MAC address in the Proxmox OUI."""
        n = next(self._macs)
        return f"{MAC_PREFIX}:{n >> 16 & 0xFF:02X}:{n >> 8 & 0xFF:02X}:{n & 0xFF:02X}"

    def _typed(self, endpoint, key, value):
        """A config value typed as the schema says (integers and booleans as numbers)."""
        prop = endpoint.property_for(key) or {}
        if isinstance(value, bool):
            return int(value)
        if prop.get("type") in ("integer", "boolean"):
            return int(value)
        if prop.get("type") == "number":
            return float(value)
        return str(value)

    def _check_vmid_free(self, vmid, param="vmid"):
        """Raise the server's 'already exists' when the id is taken anywhere in the cluster."""
        existing = self.guests.get(vmid)
        if existing is None:
            return
        if self.conflict_as_400:
            raise parameter_error({param: f"VM {vmid} already exists"})
        raise ApiError(500, f"{existing.label} {vmid} already exists on node '{existing.node}'")

    def _storage_on(self, name, node, content, param):
        """The Storage `name` on `node` for a content type, or the server's refusal."""
        storage = next((s for s in self.storages if s.storage == name and s.on(node)), None)
        if storage is None:
            raise ApiError(500, f"storage '{name}' does not exist")
        if not storage.holds(content):
            what = "container directories" if content == "rootdir" else "vm images"
            raise parameter_error({param: f"storage '{name}' does not support {what}"})
        return storage

    def _allocate_volumes(self, guest, endpoint, values, default_storage=None):
        """Turn STORAGE:SIZE (GiB) disk values into allocated volumes with a size=; in place."""
        pattern = LXC_DISK if guest.kind == "lxc" else QEMU_DISK
        content = "rootdir" if guest.kind == "lxc" else "images"
        used = {m.group(1) for v in guest.config.values()
                for m in [re.search(rf"vm-{guest.vmid}-disk-(\d+)", str(v))] if m}
        index = itertools.count()
        for key in sorted(k for k in values if pattern.match(k)):
            fmt = (endpoint.property_for(key) or {}).get("format")
            parsed = parse_property_string(fmt, str(values[key])) if isinstance(fmt, dict) else {}
            volume_key = "volume" if guest.kind == "lxc" else "file"
            volume = str(parsed.get(volume_key, ""))
            if guest.kind == "lxc" and re.fullmatch(r"\d+(\.\d+)?", volume):
                volume = f"{default_storage or 'local'}:{volume}"
            match = NEW_VOLUME.match(volume)
            if not match:
                continue
            self._storage_on(match.group("storage"), guest.node, content, key)
            number = next(i for i in index if str(i) not in used)
            parsed[volume_key] = f"{match.group('storage')}:vm-{guest.vmid}-disk-{number}"
            parsed["size"] = format_size(int(float(match.group("size")) * GIB))
            values[key] = format_property_string(parsed, fmt)

    def _with_macs(self, guest, endpoint, values):
        """Give every NIC without a MAC address one, as the server does; in place."""
        for key in [k for k in values if re.fullmatch(r"net\d+", k)]:
            fmt = (endpoint.property_for(key) or {}).get("format")
            parsed = parse_property_string(fmt, str(values[key]))
            if guest.kind == "lxc":
                parsed.setdefault("hwaddr", self._new_mac())
                values[key] = format_property_string(parsed)
            else:  # qemu spells the NIC model=MAC first: virtio=BC:24:11:..,bridge=vmbr0
                model, mac = parsed.pop("model", "virtio"), parsed.pop("macaddr", None)
                values[key] = format_property_string({model: mac or self._new_mac(), **parsed})

    def create_lxc(self, request):
        """POST /nodes/{node}/lxc: a container locked 'create' until its vzcreate task ends."""
        node = self._online_node(request.path_values["node"]).name
        params = dict(request.params)
        vmid = int(params.pop("vmid"))
        self._check_vmid_free(vmid)
        ostemplate = params.pop("ostemplate")
        storage = params.pop("storage", "local")
        start_after = params.pop("start", "0") in ("1", 1, True)
        public_keys = params.get("ssh-public-keys") or ""
        for not_config in ("password", "ssh-public-keys", "force", "restore", "pool", "ignore-unpack-errors",
                           "unique", "ha-managed", "bwlimit"):
            params.pop(not_config, None)
        if "rootfs" not in params:
            self._storage_on(storage, node, "rootdir", "storage")
            params["rootfs"] = f"{storage}:4"
        guest = Guest(vmid, "lxc", node, {})
        config = {k: self._typed(request.endpoint, k, v) for k, v in params.items()}
        self._allocate_volumes(guest, request.endpoint, config, default_storage=storage)
        self._with_macs(guest, request.endpoint, config)
        config.setdefault("hostname", f"CT{vmid}")
        config.setdefault("memory", 512)
        config.setdefault("swap", 512)
        config.setdefault("arch", "amd64")
        config.setdefault("ostype", "debian")
        guest.config = config
        guest.lock = "create"
        self.guests[vmid] = guest

        def finish(task):
            """Unlock the new container, or remove it when the task failed."""
            if not task.succeeded:
                self.guests.pop(vmid, None)
                return
            guest.lock = None
            if start_after:
                self._set_running(guest)

        log = [f"extracting archive '{ostemplate}'", "Total bytes read: 524288000 (500MiB, 250MiB/s)",
               "Detected container architecture: amd64",
               "Creating SSH host key 'ssh_host_ed25519_key' - this may take some time ..."]
        work = None
        if self.guest_backend:
            def work():
                self.guest_backend.create_lxc(guest, public_keys)
                if start_after:
                    self.guest_backend.power(guest, "start")
        return self._start_task(node, "vzcreate", vmid, request.user, log=log, on_end=finish, work=work)

    def clone_qemu(self, request):
        """POST /nodes/{node}/qemu/{vmid}/clone: a new VM locked 'clone' until its qmclone task ends."""
        source = self._guest(request, "qemu")
        params = request.params
        newid = int(params["newid"])
        if newid in self.guests:
            if self.conflict_as_400:
                raise parameter_error({"newid": f"VM {newid} already exists"})
            raise ApiError(500, f"unable to create VM {newid}: config file already exists")
        target = self._online_node(params["target"]).name if params.get("target") else source.node
        full = params.get("full")
        full = (not source.is_template) if full is None else str(full) == "1"
        if not full and not source.is_template:
            raise ApiError(500, "parameter 'full' must be set for a clone of a VM which is not a template")
        if params.get("storage"):
            if not full:
                raise parameter_error({"storage": "storage selection is only available for full clones"})
            self._storage_on(params["storage"], target, "images", "storage")
        config = {k: v for k, v in source.config.items() if k not in ("template", "lock")}
        config["name"] = params.get("name") or f"Copy-of-VM-{source.name}"
        if params.get("description"):
            config["description"] = params["description"]
        for number, key in enumerate(sorted((k for k in config if QEMU_DISK.match(k)), key=disk_order)):
            config[key] = self._clone_volume(str(config[key]), source.vmid, newid, number, full,
                                             params.get("storage"))
        for key in [k for k in config if re.fullmatch(r"net\d+", k)]:
            config[key] = re.sub(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}", self._new_mac(), str(config[key]))
        guest = Guest(newid, "qemu", target, config)
        guest.lock = "clone"
        self.guests[newid] = guest

        def finish(task):
            """Unlock the clone, or remove it when the task failed."""
            if task.succeeded:
                guest.lock = None
            else:
                self.guests.pop(newid, None)

        kind = "full" if full else "linked"
        log = [f"create {kind} clone of drive scsi0 ({source.config.get('scsi0', '')})",
               "transferred 10.0 GiB of 10.0 GiB (100.00%)" if full else "Logical volume created."]
        return self._start_task(source.node, "qmclone", source.vmid, request.user, log=log, on_end=finish)

    @staticmethod
    def _clone_volume(value, source_id, newid, number, full, storage):
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

    # --- guests: changing -------------------------------------------------------------------------

    def _take_config_lock(self, guest):
        """Fail like a contended config lock while lock_timeouts are pending."""
        if self.lock_timeouts > 0:
            self.lock_timeouts -= 1
            path = (f"/var/lock/qemu-server/lock-{guest.vmid}.conf" if guest.kind == "qemu"
                    else f"/run/lock/lxc/pve-config-{guest.vmid}.lock")
            raise ApiError(500, f"can't lock file '{path}' - got timeout")

    @staticmethod
    def _check_unlocked(guest, params):
        """Refuse to touch a guest that carries a lock (unless skiplock)."""
        if guest.lock and str(params.get("skiplock", "0")) != "1":
            raise ApiError(500, f"{guest.label} is locked ({guest.lock})")

    def _write_config(self, request, kind):
        """Apply a config change: deletions, then new values (with disks and MACs as the server does)."""
        guest = self._guest(request, kind)
        params = request.params
        self._take_config_lock(guest)
        self._check_unlocked(guest, params)
        if params.get("digest") and params["digest"] != config_digest(guest.config):
            raise ApiError(500, "detected modified configuration - file changed by other user? Try again.")
        for key in split_list(str(params.get("delete", ""))):
            guest.config.pop(key, None)
        values = {k: self._typed(request.endpoint, k, v) for k, v in params.items() if k not in NOT_CONFIG_KEYS}
        self._allocate_volumes(guest, request.endpoint, values)
        self._with_macs(guest, request.endpoint, values)
        guest.config.update(values)
        return guest

    def update_lxc_config(self, request):
        """PUT /nodes/{node}/lxc/{vmid}/config (synchronous)."""
        self._write_config(request, "lxc")
        return None

    def update_qemu_config(self, request):
        """PUT /nodes/{node}/qemu/{vmid}/config (synchronous)."""
        self._write_config(request, "qemu")
        return None

    def update_qemu_config_async(self, request):
        """POST /nodes/{node}/qemu/{vmid}/config: applied, and a qmconfig task returned."""
        guest = self._write_config(request, "qemu")
        return self._start_task(guest.node, "qmconfig", guest.vmid, request.user,
                                log=["update VM {}: {}".format(guest.vmid, ", ".join(sorted(request.params)))])

    def _resize(self, request, kind):
        """PUT .../resize: grow a disk (+N or absolute); shrinking fails the task."""
        guest = self._guest(request, kind)
        params = request.params
        self._take_config_lock(guest)
        self._check_unlocked(guest, params)
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
        return self._start_task(guest.node, "resize", guest.vmid, request.user, log=log, error=error,
                                on_end=finish)

    def resize_lxc(self, request):
        """PUT /nodes/{node}/lxc/{vmid}/resize."""
        return self._resize(request, "lxc")

    def resize_qemu(self, request):
        """PUT /nodes/{node}/qemu/{vmid}/resize."""
        return self._resize(request, "qemu")

    # --- guests: power and deletion ---------------------------------------------------------------

    def _set_running(self, guest):
        """Mark a guest running from now (the guest agent starts counting its delay here)."""
        guest.status = "running"
        guest.started_at = time.monotonic()

    def _power(self, request, kind, action):
        """POST .../status/{start,stop,shutdown,reboot}: a task that changes the status when it ends."""
        guest = self._guest(request, kind)
        prefix = "vz" if kind == "lxc" else "qm"
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
            if not task.succeeded or self.guests.get(guest.vmid) is not guest:
                return
            if action in ("start", "reboot"):
                self._set_running(guest)
            else:
                guest.status = "stopped"
                guest.started_at = None

        verb = {"start": "starting", "stop": "stopping", "shutdown": "shutting down",
                "reboot": "rebooting"}[action]
        work = (lambda: self.guest_backend.power(guest, action)) if self.guest_backend else None
        return self._start_task(guest.node, f"{prefix}{action}", guest.vmid, request.user,
                                log=[f"{verb} {guest.label} {guest.vmid}"], error=error, on_end=finish, work=work)

    def _delete(self, request, kind):
        """DELETE a guest: refused while running (lxc: unless force), removed when the task ends."""
        guest = self._guest(request, kind)
        params = request.params
        self._check_unlocked(guest, params)
        if guest.status == "running":
            if kind == "qemu":
                raise ApiError(500, f"VM {guest.vmid} is running - destroy failed")
            if str(params.get("force", "0")) != "1":
                raise ApiError(500, f"unable to destroy CT {guest.vmid} - container is running")

        def finish(task):
            """Remove the guest (its address goes back to the pool with it)."""
            if task.succeeded and self.guests.get(guest.vmid) is guest:
                del self.guests[guest.vmid]

        log = [f"  Logical volume \"vm-{guest.vmid}-disk-0\" successfully removed."]
        if str(params.get("purge", "0")) == "1":
            log.append(f"purging {guest.label} {guest.vmid} from related configurations..")
        prefix = "vz" if kind == "lxc" else "qm"
        work = (lambda: self.guest_backend.destroy(guest)) if self.guest_backend else None
        return self._start_task(guest.node, f"{prefix}destroy", guest.vmid, request.user, log=log,
                                on_end=finish, work=work)

    def delete_lxc(self, request):
        """DELETE /nodes/{node}/lxc/{vmid}."""
        return self._delete(request, "lxc")

    def delete_qemu(self, request):
        """DELETE /nodes/{node}/qemu/{vmid}."""
        return self._delete(request, "qemu")


def _power_handler(kind, action):
    """A FakeProxmox method answering one power action of one guest kind."""
    def handler(self, request):
        """Delegate to FakeProxmox._power."""
        return self._power(request, kind, action)
    handler.__doc__ = f"POST /nodes/{{node}}/{kind}/{{vmid}}/status/{action}."
    return handler


for _kind in ("lxc", "qemu"):
    for _action in ("start", "stop", "shutdown", "reboot"):
        setattr(FakeProxmox, f"{_kind}_{_action}", _power_handler(_kind, _action))

# (method, templated path) -> FakeProxmox method name; every endpoint of the subset has one.
ROUTES = {
    ("GET", "/version"): "get_version",
    ("POST", "/access/ticket"): "create_ticket",
    ("GET", "/cluster/nextid"): "next_id",
    ("GET", "/cluster/resources"): "cluster_resources",
    ("GET", "/nodes"): "list_nodes",
    ("GET", "/nodes/{node}/status"): "get_node_status",
    ("GET", "/nodes/{node}/tasks/{upid}/status"): "get_task_status",
    ("GET", "/nodes/{node}/tasks/{upid}/log"): "get_task_log",
    ("GET", "/nodes/{node}/storage"): "list_storage",
    ("GET", "/nodes/{node}/lxc"): "list_lxc",
    ("POST", "/nodes/{node}/lxc"): "create_lxc",
    ("GET", "/nodes/{node}/lxc/{vmid}"): "lxc_index",
    ("DELETE", "/nodes/{node}/lxc/{vmid}"): "delete_lxc",
    ("GET", "/nodes/{node}/lxc/{vmid}/config"): "lxc_config",
    ("PUT", "/nodes/{node}/lxc/{vmid}/config"): "update_lxc_config",
    ("GET", "/nodes/{node}/lxc/{vmid}/status/current"): "lxc_status",
    ("GET", "/nodes/{node}/lxc/{vmid}/interfaces"): "lxc_interfaces",
    ("PUT", "/nodes/{node}/lxc/{vmid}/resize"): "resize_lxc",
    ("GET", "/nodes/{node}/qemu"): "list_qemu",
    ("POST", "/nodes/{node}/qemu/{vmid}/clone"): "clone_qemu",
    ("GET", "/nodes/{node}/qemu/{vmid}"): "qemu_index",
    ("DELETE", "/nodes/{node}/qemu/{vmid}"): "delete_qemu",
    ("GET", "/nodes/{node}/qemu/{vmid}/config"): "qemu_config",
    ("POST", "/nodes/{node}/qemu/{vmid}/config"): "update_qemu_config_async",
    ("PUT", "/nodes/{node}/qemu/{vmid}/config"): "update_qemu_config",
    ("GET", "/nodes/{node}/qemu/{vmid}/status/current"): "qemu_status",
    ("PUT", "/nodes/{node}/qemu/{vmid}/resize"): "resize_qemu",
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces"): "agent_interfaces",
    **{("POST", f"/nodes/{{node}}/{k}/{{vmid}}/status/{a}"): f"{k}_{a}"
       for k in ("lxc", "qemu") for a in ("start", "stop", "shutdown", "reboot")},
}


@dataclass
class _Request:
    """A validated request as the handlers see it."""

    method: str
    path: str
    endpoint: object
    path_values: dict
    params: dict
    user: str | None


# --- HTTP layer ----------------------------------------------------------------------------------

class _TLSServer(ThreadingHTTPServer):
    """A threaded HTTPS server that tracks its connections so stop() can close them."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, address, handler, context, fake):
        """Bind and keep the TLS context; the handshake happens in the connection's own thread."""
        super().__init__(address, handler)
        self.context = context
        self.fake = fake
        self._connections = set()
        self._connections_lock = threading.Lock()

    def get_request(self):
        """Accept a connection and wrap it for TLS without handshaking in the accept loop."""
        sock, address = self.socket.accept()
        wrapped = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self._connections_lock:
            self._connections.add(wrapped)
        return wrapped, address

    def shutdown_request(self, request):
        """Forget and close a finished connection."""
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self):
        """Shut down every open (keep-alive) connection so its thread ends."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        """Stay quiet about clients that go away (TLS aborts, resets)."""


class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP requests into FakeProxmox.handle calls and writes pveproxy-style answers."""

    protocol_version = "HTTP/1.1"
    server_version = "pve-api-daemon/3.0"
    sys_version = ""
    timeout = 30

    def setup(self):
        """Apply the idle timeout, then finish the TLS handshake."""
        super().setup()
        self.connection.do_handshake()

    def log_message(self, format, *args):
        """No access log on stderr."""

    def do_GET(self):
        """GET."""
        self._dispatch("GET")

    def do_POST(self):
        """POST."""
        self._dispatch("POST")

    def do_PUT(self):
        """PUT."""
        self._dispatch("PUT")

    def do_DELETE(self):
        """DELETE."""
        self._dispatch("DELETE")

    def _dispatch(self, method):
        """Read the body, let the fake answer, write the reply (or drop the connection)."""
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = self.server.fake.handle(method, self.path, self.headers, body)
        if reply.drop:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        payload = json.dumps(reply.body).encode("utf-8")
        reason = reply.reason.splitlines()[0] if reply.reason else ""
        self.send_response(reply.status, reason.encode("latin-1", "replace").decode("latin-1"))
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "max-age=0")
        self.send_header("Pragma", "no-cache")
        if reply.status >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(payload)


def _summary(fake):
    """What the fake did, as one JSON-able dict: every task, requests by endpoint, its own CPU."""
    with fake._lock:
        fake._advance()
        endpoints, polls = {}, {}
        for record in fake.requests:
            upid = re.search(r"UPID:[^/]+", record.path)
            if upid and record.path.endswith("/status"):
                polls[upid.group(0)] = polls.get(upid.group(0), 0) + 1
            path = re.sub(r"UPID:[^/]+", "{upid}", record.path)
            path = re.sub(r"/nodes/[^/]+", "/nodes/{node}", path)
            path = re.sub(r"/(lxc|qemu)/\d+", r"/\1/{vmid}", path)
            key = f"{record.method} {path}"
            endpoints[key] = endpoints.get(key, 0) + 1
        tasks = [{"type": t.type, "id": t.id, "seconds": t.duration, "finished": t.finished,
                  "exitstatus": t.exitstatus, "status_polls": polls.get(t.upid, 0)} for t in fake.tasks.values()]
        return {"tasks": tasks, "requests": len(fake.requests), "endpoints": endpoints,
                "violations": len(fake.schema_violations), "cpu_seconds": round(time.process_time(), 3)}


def main(argv=None):
    """Run a fake cluster (two nodes, a VM template 9000) until interrupted or its --lifetime is over."""
    parser = argparse.ArgumentParser(description="Run a fake Proxmox VE API on 127.0.0.1.")
    parser.add_argument("--task-seconds", type=float, default=2.0)
    parser.add_argument("--agent-delay", type=float, default=3.0)
    parser.add_argument("--lifetime", type=float, default=None,
                        help="exit by itself after this many seconds (default: run until interrupted)")
    parser.add_argument("--summary", action="store_true",
                        help="on exit, print one line 'SUMMARY {json}': tasks, requests by endpoint, own CPU")
    parser.add_argument("--tcp-nodelay", action="store_true",
                        help="send answers without Nagle's delay (headers and body are two writes, so a "
                             "client's delayed ACK otherwise holds every answer for about 40 ms)")
    args = parser.parse_args(argv)
    _Handler.disable_nagle_algorithm = args.tcp_nodelay
    fake = FakeProxmox(nodes=[Node("pve1"), Node("pve2")], task_seconds=args.task_seconds,
                       agent_delay=args.agent_delay)
    fake.add_template(9000, node="pve1")
    deadline = None if args.lifetime is None else time.monotonic() + args.lifetime
    with fake:
        print(f"PROXMOX_HOST=127.0.0.1\nPROXMOX_PORT={fake.port}\nPROXMOX_USER=root@pam\n"
              f"PROXMOX_TOKEN_NAME=paas\nPROXMOX_TOKEN_VALUE=secret\nPROXMOX_CA_BUNDLE={fake.ca_bundle_path}",
              flush=True)
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        if args.summary:
            print("SUMMARY " + json.dumps(_summary(fake)), flush=True)
        fake.assert_no_violations()


if __name__ == "__main__":
    main()
