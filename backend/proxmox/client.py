"""The Proxmox VE client: proxmoxer over HTTPS, with retries, task waiting and placement.

Knows nothing of Flask or of the models; everything it needs comes through ProxmoxSettings.

One module over 400 lines on purpose: it is one class, the one place that speaks to the Proxmox API.
"""
import ipaddress
import logging
import random
import re
import threading
import time
from urllib.parse import quote

import requests
from proxmoxer import ProxmoxAPI, ResourceException
from proxmoxer.core import AuthenticationError

from backend.proxmox.errors import GuestExists, ProxmoxError, ProxmoxTimeout, TaskFailed

log = logging.getLogger(__name__)

NODE_RE = re.compile(r"[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?")
TAG_RE = re.compile(r"[a-z0-9_][a-z0-9_+.-]*")
KINDS = ("lxc", "qemu")
# 5xx answers that retrying cannot change.
PERMANENT_5XX = re.compile(
    r"already exists|is running|does not exist|no such|not a template|is a template|permission|"
    r"unable to parse|invalid|not enough|shrinking", re.IGNORECASE)
LOCK_TIMEOUT = re.compile(r"can't lock file .* got timeout", re.IGNORECASE)
TASK_NOT_VISIBLE = re.compile(r"no such task|unable to open file", re.IGNORECASE)
DISK_KEYS = ("scsi0", "virtio0", "sata0", "ide0")
RRD_TIMEFRAMES = ("hour", "day", "week", "month", "year")
RRD_FUNCTIONS = ("AVERAGE", "MAX")


def checked_node(node):
    """node, when it is a node name (it becomes a word of an API path)."""
    if not isinstance(node, str) or not NODE_RE.fullmatch(node):
        raise ValueError(f"not a node name: {node!r}")
    return node


def checked_vmid(vmid):
    """vmid as an int, when it is a valid VMID."""
    vmid = int(vmid)
    if not 100 <= vmid <= 999_999_999:
        raise ValueError(f"not a VMID: {vmid}")
    return vmid


SNAPSHOT_RE = re.compile(r"[a-z][a-z0-9_]{1,39}")  # pve-configid, as snapname takes it (40 at most)
STORAGE_RE = re.compile(r"[a-z][a-z0-9\-_.]*[a-z0-9]", re.IGNORECASE)  # pve-storage-id


def checked_snapshot(name):
    if not isinstance(name, str) or not SNAPSHOT_RE.fullmatch(name):
        raise ValueError(f"invalid snapshot name {name!r}")
    return name


def checked_storage(storage):
    if not isinstance(storage, str) or not STORAGE_RE.fullmatch(storage):
        raise ValueError(f"invalid storage id {storage!r}")
    return storage


def checked_kind(kind):
    """kind, when it is lxc or qemu."""
    if kind not in KINDS:
        raise ValueError(f"guest kind must be lxc or qemu, not {kind!r}")
    return kind


def upid_node(upid):
    """The node a task runs on: the second field of its UPID."""
    parts = str(upid).split(":")
    if len(parts) < 9 or parts[0] != "UPID":
        raise ProxmoxError(f"not a task id: {upid!r}")
    return parts[1]


def usable_ipv4(address, loopback=False):
    """True for an IPv4 address a client can reach: not link-local, multicast or unspecified, and not
    loopback unless asked (simulation mode gives each simulated guest an address in 127.0.0.0/8)."""
    try:
        ip = ipaddress.ip_address(address.split("/")[0])
    except ValueError:
        return False
    return ip.version == 4 and not ((ip.is_loopback and not loopback) or ip.is_link_local or ip.is_multicast
                                    or ip.is_unspecified or ip.is_reserved)


def join_tags(tags):
    """Proxmox's tag list: lowercase tags joined by ';'."""
    cleaned = []
    for tag in tags:
        tag = str(tag).lower()
        if not TAG_RE.fullmatch(tag):
            raise ValueError(f"not a Proxmox tag: {tag!r}")
        if tag not in cleaned:
            cleaned.append(tag)
    return ";".join(cleaned)


def split_tags(value):
    return [t for t in re.split(r"[;, ]+", value or "") if t]


class ProxmoxClient:
    """Talks to one Proxmox VE cluster. Every method raises ProxmoxError on failure."""

    def __init__(self, settings, *, api=None, sleep=time.sleep, clock=time.monotonic):
        self.settings = settings
        self._api = api
        self._sleep = sleep
        self._clock = clock

    @property
    def connection(self):
        """The proxmoxer handle once connected (None before): another client of the same thread may reuse it."""
        return self._api

    # -- transport -----------------------------------------------------------------

    @property
    def api(self):
        """The proxmoxer handle, connected on first use (so the app starts without Proxmox)."""
        if self._api is None:
            s = self.settings
            kwargs = {"port": s.port, "user": s.user, "timeout": s.timeout, "backend": "https", "service": "PVE",
                      "verify_ssl": s.ca_bundle if (s.verify_ssl and s.ca_bundle) else s.verify_ssl}
            if s.token_name and s.token_value:
                kwargs.update(token_name=s.token_name, token_value=s.token_value)
            else:
                kwargs["password"] = s.password
            try:
                self._api = ProxmoxAPI(s.host, **kwargs)
            except AuthenticationError:
                raise ProxmoxError(f"Proxmox refused the credentials of {s.user}", status=401) from None
            except requests.RequestException as exc:
                log.warning("cannot reach Proxmox at %s:%s (%s)", s.host, s.port, exc.__class__.__name__)
                raise ProxmoxError(f"cannot reach Proxmox ({exc.__class__.__name__})", transient=True) from None
        return self._api

    def _translate(self, exc):
        message = (exc.content or exc.status_message or "").strip()
        errors = exc.errors if isinstance(exc.errors, dict) else {}
        text = " ".join([message, *map(str, errors.values())])
        if "already exists" in text:
            return GuestExists(message, status=exc.status_code, errors=errors)
        transient = exc.status_code >= 500 and (
            LOCK_TIMEOUT.search(text) is not None or not PERMANENT_5XX.search(text))
        return ProxmoxError(message, status=exc.status_code, errors=errors, transient=transient)

    def call(self, method, path, **params):
        """One API call; transient failures are retried with jittered backoff, a bounded number of times."""
        attempt = 0
        while True:
            try:
                return getattr(self.api(path), method)(**params)
            except ResourceException as exc:
                error = self._translate(exc)
            except AuthenticationError:
                error = ProxmoxError(f"Proxmox refused the credentials of {self.settings.user}", status=401)
            except requests.RequestException as exc:
                error = ProxmoxError(f"cannot reach Proxmox ({exc.__class__.__name__})", transient=True)
            except (ValueError, OSError) as exc:
                # Refused before sending: http.client rejects a header with a line break in it (its message
                # quotes the header, the API token included), requests a CA bundle that is not there. Only
                # the class is kept, never the message.
                error = ProxmoxError(f"the request to Proxmox could not be made ({exc.__class__.__name__}); check "
                                     "the Proxmox settings (a line break in the token? the CA bundle's path?)")
            if not error.transient or attempt >= self.settings.retries:
                raise error
            attempt += 1
            delay = min(8.0, 0.25 * 2 ** attempt) * random.uniform(0.5, 1.0)
            log.warning("Proxmox %s %s failed (%s); retry %d in %.2fs", method.upper(), path, error.message,
                        attempt, delay)
            self._sleep(delay)

    # -- cluster and placement -------------------------------------------------------

    def nodes(self):
        """Every node with its status and free memory (MB) and storage (GB) for guests."""
        result = []
        for entry in self.call("get", "nodes"):
            node = {
                "node": entry["node"],
                "status": entry.get("status", "unknown"),
                "cpu": entry.get("cpu", 0),
                "maxcpu": entry.get("maxcpu", 0),
                "free_memory_mb": (entry.get("maxmem", 0) - entry.get("mem", 0)) // 2**20,
                "total_memory_mb": entry.get("maxmem", 0) // 2**20,
                "free_disk_gb": None,
            }
            if node["status"] == "online":
                node["free_disk_gb"] = self._storage_free_gb(entry["node"])
            result.append(node)
        return result

    def _storage_free_gb(self, node):
        for storage in self.call("get", f"nodes/{checked_node(node)}/storage"):
            if storage.get("storage") == self.settings.storage:
                return storage.get("avail", 0) // 2**30
        return 0

    def choose_node(self, memory_mb, disk_gb, template_node=None):
        """An online node with room: the template's node for clones, else PROXMOX_NODE, else the emptiest."""
        wanted = template_node or self.settings.node
        candidates = [n for n in self.nodes() if n["status"] == "online"
                      and n["free_memory_mb"] >= memory_mb and (n["free_disk_gb"] or 0) >= disk_gb]
        if wanted:
            for node in candidates:
                if node["node"] == wanted:
                    return wanted
            raise ProxmoxError(f"node {wanted} is offline or lacks {memory_mb} MB memory / {disk_gb} GB disk")
        if not candidates:
            raise ProxmoxError(f"no online node has {memory_mb} MB memory and {disk_gb} GB disk free")
        return max(candidates, key=lambda n: (n["free_memory_mb"], n["free_disk_gb"]))["node"]

    def next_vmid(self):
        """A free VMID as /cluster/nextid sees it now: not reserved, so a create may still collide."""
        return checked_vmid(self.call("get", "cluster/nextid"))

    def check_vmid(self, vmid):
        """vmid when it is free now; a 400 ProxmoxError when it is taken."""
        return checked_vmid(self.call("get", "cluster/nextid", vmid=checked_vmid(vmid)))

    def guests(self, tag=None):
        """Guests of the cluster (vmid, node, type, status, name, tags), optionally only those with tag."""
        found = []
        for entry in self.call("get", "cluster/resources", type="vm"):
            tags = split_tags(entry.get("tags"))
            if tag is None or tag in tags:
                found.append({"vmid": entry["vmid"], "node": entry.get("node"), "type": entry.get("type"),
                              "status": entry.get("status"), "name": entry.get("name"), "tags": tags,
                              "template": bool(entry.get("template")), "lock": entry.get("lock")})
        return found

    def template_node(self, template_id):
        """The node that holds the VM template."""
        for guest in self.guests():
            if guest["vmid"] == template_id and guest["type"] == "qemu":
                return guest["node"]
        raise ProxmoxError(f"VM template {template_id} not found in the cluster")

    # -- tasks -------------------------------------------------------------------------

    # Task polling. With no history: at once, then after 0.05 s, each wait 1.5 times the one before, up to
    # 1 s. With history (per cluster and task type, in this process: the least of the last TASK_HISTORY
    # estimates of how long a successful task took from the call that started it): one look halfway to
    # 0.05 s before that time, one there, then the plain schedule again from 0.05 s (or 1 % of that time if
    # longer). A 2 s task is then seen stopped 0.05-0.1 s after it ends in 2-4 requests, where the plain
    # schedule saw it 0.46 s late in 9. The estimate a task leaves is the look that saw it stopped when the
    # look before saw it running at most max(0.125 s, 2 %) earlier; else, with no history, the middle of
    # those two looks; else no more than the later of the look before and the time aimed at. Never more than
    # TASK_QUIET_MAX s between two looks; a task that ends (or fails) much sooner than its history says is
    # seen at the halfway look, and teaches the history. Tasks that vary a lot pay for fewer requests with
    # a later look now and then (up to the spread of their durations).
    TASK_POLL_FIRST = 0.05
    TASK_POLL_MAX = 1.0
    TASK_QUIET_MAX = 10.0
    TASK_HISTORY = 4
    _task_seconds = {}
    _task_seconds_lock = threading.Lock()

    @classmethod
    def _next_task_poll(cls, elapsed, target, interval, first):
        """(seconds to wait before the next look, the interval after it) for a task running since elapsed s."""
        if target is not None:
            for point in (target / 2, target):
                if elapsed < point - 0.01:
                    return min(point - elapsed, cls.TASK_QUIET_MAX), max(cls.TASK_POLL_FIRST, 0.01 * target)
        if first:
            return 0.0, interval
        return interval, min(interval * 1.5, cls.TASK_POLL_MAX)

    def _task_history(self, key, seconds=None):
        """The least recent estimate for tasks like key (None when there is none); records seconds first."""
        with self._task_seconds_lock:
            recent = self._task_seconds.setdefault(key, [])
            if seconds is not None:
                recent.append(seconds)
                del recent[:-self.TASK_HISTORY]
            return min(recent) if recent else None

    def wait_for_task(self, upid, timeout=None):
        """Wait until the task stops; OK and 'WARNINGS: N' succeed, anything else raises TaskFailed."""
        node = upid_node(upid)
        key = (self.settings.host, self.settings.port, str(upid).split(":")[5])
        started = self._clock()
        deadline = started + (timeout or self.settings.task_timeout)
        interval, first, running_at = self.TASK_POLL_FIRST, True, 0.0
        while True:
            now = self._clock()
            expected = self._task_history(key)
            target = None if expected is None else expected - self.TASK_POLL_FIRST
            wait, interval = self._next_task_poll(now - started, target, interval, first)
            first = False
            if wait > 0:
                self._sleep(min(wait, max(deadline - now, 0.0)))
            asked = self._clock() - started
            try:
                status = self.call("get", f"nodes/{node}/tasks/{upid}/status")
            except ProxmoxError as exc:
                # A task can be invisible for a moment right after it was started.
                if not TASK_NOT_VISIBLE.search(exc.describe()) or self._clock() > deadline:
                    raise
                status = {"status": "running"}
            if status.get("status") == "stopped":
                exit_status = str(status.get("exitstatus", ""))
                if exit_status == "OK" or exit_status.startswith("WARNINGS"):
                    if asked - running_at <= max(2.5 * self.TASK_POLL_FIRST, 0.02 * asked):
                        self._task_history(key, asked)
                    elif target is None:
                        self._task_history(key, (running_at + asked) / 2)
                    else:
                        self._task_history(key, min(asked, max(running_at, target)))
                    return status
                raise TaskFailed(f"task {status.get('type', '')} failed: {exit_status}".replace("  ", " "),
                                 log_tail=self.task_log_tail(upid))
            if self._clock() > deadline:
                raise ProxmoxTimeout(f"task {upid} still running after {timeout or self.settings.task_timeout} s")
            running_at = asked

    def task_log_tail(self, upid, lines=5):
        """The last lines of a task's log (empty when it cannot be read)."""
        try:
            entries = self.call("get", f"nodes/{upid_node(upid)}/tasks/{upid}/log", start=0, limit=500)
        except ProxmoxError:
            return []
        return [str(e.get("t", "")) for e in entries[-lines:]]

    def _run(self, upid):
        """Wait for a task that an async call may have returned (some calls answer null when done)."""
        if isinstance(upid, str) and upid.startswith("UPID:"):
            self.wait_for_task(upid)
        return upid

    # -- creating guests -----------------------------------------------------------------

    def network_config(self, ip_cidr=None):
        """The ip= part of a network device: a static address with the gateway, or DHCP."""
        if ip_cidr:
            config = f"ip={ip_cidr}"
            if self.settings.gateway:
                config += f",gw={self.settings.gateway}"
            return config
        return "ip=dhcp"

    def create_lxc(self, node, vmid, *, hostname, cores, memory, disk, tags, ip_cidr=None, swap=512):
        """Start creating a container; returns the task id. A taken VMID raises GuestExists."""
        params = {
            "vmid": checked_vmid(vmid),
            "ostemplate": self.settings.lxc_template,
            "hostname": hostname,
            "cores": int(cores),
            "memory": int(memory),
            "swap": int(swap),
            "rootfs": f"{self.settings.storage}:{int(disk)}",
            "net0": f"name=eth0,bridge={self.settings.bridge},{self.network_config(ip_cidr)}",
            "unprivileged": 1,
            "features": "nesting=1",
            "onboot": 1,
            "tags": join_tags(tags),
        }
        if self.settings.ssh_public_key:
            params["ssh-public-keys"] = self.settings.ssh_public_key
        return self.call("post", f"nodes/{checked_node(node)}/lxc", **params)

    def clone_vm(self, node, vmid, *, name, template_id=None):
        """Start cloning the VM template into vmid on node; returns the task id."""
        template_id = template_id or self.settings.vm_template_id
        if not template_id:
            raise ProxmoxError("no VM template configured (PROXMOX_VM_TEMPLATE_ID)")
        params = {"newid": checked_vmid(vmid), "name": name, "full": 1 if self.settings.full_clone else 0}
        if self.settings.full_clone:
            params["storage"] = self.settings.storage
        return self.call("post", f"nodes/{checked_node(node)}/qemu/{checked_vmid(template_id)}/clone", **params)

    def configure_vm(self, node, vmid, *, cores, memory, tags, ip_cidr=None):
        """Size the clone and give cloud-init its user, network and key; waits for the change."""
        params = {
            "cores": int(cores),
            "memory": int(memory),
            "ciuser": self.settings.ci_user,
            "ipconfig0": self.network_config(ip_cidr),
            "agent": "1",
            "onboot": 1,
            "tags": join_tags(tags),
        }
        if self.settings.ssh_public_key:
            # The API wants this option percent-encoded (spaces as %20), on top of form encoding.
            params["sshkeys"] = quote(self.settings.ssh_public_key.strip() + "\n", safe="")
        self._run(self.call("post", f"nodes/{checked_node(node)}/qemu/{checked_vmid(vmid)}/config", **params))

    def grow_vm_disk(self, node, vmid, disk_gb):
        """Grow the VM's boot disk to disk_gb (never shrinks: Proxmox refuses that)."""
        self.grow_disk(node, vmid, "qemu", disk_gb)

    def disk_size_gb(self, node, vmid, kind):
        """(config key, size in GB) of the guest's boot disk: rootfs for containers, the first disk for VMs."""
        config = self.guest_config(node, vmid, kind)
        for key in (("rootfs",) if kind == "lxc" else DISK_KEYS):
            if key in config:
                match = re.search(r"size=(\d+)([KMGT]?)", str(config[key]))
                return key, (_to_gb(match.group(1), match.group(2)) if match else 0)
        raise ProxmoxError(f"{kind} {vmid} has no disk to resize")

    def grow_disk(self, node, vmid, kind, disk_gb):
        """Grow the boot disk to disk_gb GB when it is smaller; a no-op otherwise."""
        key, current_gb = self.disk_size_gb(node, vmid, kind)
        if disk_gb > current_gb:
            self._run(self.call("put", f"nodes/{checked_node(node)}/{checked_kind(kind)}/{checked_vmid(vmid)}/resize",
                                disk=key, size=f"{int(disk_gb)}G"))

    def set_size(self, node, vmid, kind, *, cores, memory):
        """Change cores and memory (MB) of a guest; takes effect at its next start."""
        path = f"nodes/{checked_node(node)}/{checked_kind(kind)}/{checked_vmid(vmid)}/config"
        if kind == "lxc":
            self.call("put", path, cores=int(cores), memory=int(memory))
        else:
            self._run(self.call("post", path, cores=int(cores), memory=int(memory)))

    def guest_config(self, node, vmid, kind):
        return self.call("get", f"nodes/{checked_node(node)}/{checked_kind(kind)}/{checked_vmid(vmid)}/config")

    # -- power ------------------------------------------------------------------------------

    def _power(self, node, vmid, kind, action, **params):
        path = f"nodes/{checked_node(node)}/{checked_kind(kind)}/{checked_vmid(vmid)}/status/{action}"
        return self._run(self.call("post", path, **params))

    # Each power action waits for its task and returns the task id (for the deployment's history).

    def start(self, node, vmid, kind):
        return self._power(node, vmid, kind, "start")

    def stop(self, node, vmid, kind):
        return self._power(node, vmid, kind, "stop")

    def reboot(self, node, vmid, kind):
        return self._power(node, vmid, kind, "reboot")

    def shutdown(self, node, vmid, kind, timeout=60):
        """Ask the guest to shut down; if it has not within timeout seconds, stop it."""
        try:
            return self._power(node, vmid, kind, "shutdown", timeout=int(timeout))
        except (TaskFailed, ProxmoxTimeout) as exc:
            log.warning("shutdown of %s %s did not finish (%s); stopping it", kind, vmid, exc.message)
            return self.stop(node, vmid, kind)

    def status(self, node, vmid, kind):
        """Live status of a guest: status, cpu, memory, disk and uptime."""
        data = self.call("get", f"nodes/{checked_node(node)}/{checked_kind(kind)}/{checked_vmid(vmid)}/status/current")
        return {
            "status": data.get("status"),
            "cpu": data.get("cpu"),
            "cpus": data.get("cpus"),
            "memory_mb": (data.get("mem") or 0) // 2**20,
            "max_memory_mb": (data.get("maxmem") or 0) // 2**20,
            "disk_gb": round((data.get("disk") or 0) / 2**30, 2),
            "max_disk_gb": round((data.get("maxdisk") or 0) / 2**30, 2),
            "uptime": data.get("uptime"),
        }

    def rrd_data(self, node, vmid, kind, timeframe="hour", cf="AVERAGE"):
        """The guest's statistics over a timeframe (hour, day, week, month, year), as Proxmox's RRD keeps them:
        a list of points, oldest first, each {"time", "cpu" (a fraction of maxcpu), "maxcpu", "mem", "maxmem",
        "disk", "maxdisk", "netin", "netout", "diskread", "diskwrite" (bytes/s)}, consolidated by cf (AVERAGE
        or MAX) over its step. Where the RRD has no data (before the guest existed) a point has its time alone."""
        if timeframe not in RRD_TIMEFRAMES:
            raise ValueError(f"timeframe must be one of {', '.join(RRD_TIMEFRAMES)}, not {timeframe!r}")
        if cf not in RRD_FUNCTIONS:
            raise ValueError(f"cf must be AVERAGE or MAX, not {cf!r}")
        path = f"nodes/{checked_node(node)}/{checked_kind(kind)}/{checked_vmid(vmid)}/rrddata"
        return self.call("get", path, timeframe=timeframe, cf=cf) or []

    def destroy(self, node, vmid, kind):
        """Stop the guest if it runs (Proxmox refuses to destroy a running one), then destroy and purge it.

        Returns the destroy task's id."""
        if self.status(node, vmid, kind)["status"] == "running":
            self.stop(node, vmid, kind)
        params = {"purge": 1}
        if kind == "qemu":
            params["destroy-unreferenced-disks"] = 1
        path = f"nodes/{checked_node(node)}/{checked_kind(kind)}/{checked_vmid(vmid)}"
        return self._run(self.call("delete", path, **params))

    # -- snapshots -------------------------------------------------------------------------

    def _guest_path(self, node, vmid, kind):
        return f"nodes/{checked_node(node)}/{checked_kind(kind)}/{checked_vmid(vmid)}"

    def snapshots(self, node, vmid, kind):
        """The guest's snapshots, oldest first: {"name", "description", "snaptime", "parent"} ("current" left out)."""
        found = self.call("get", f"{self._guest_path(node, vmid, kind)}/snapshot") or []
        return sorted((s for s in found if s.get("name") != "current"), key=lambda s: s.get("snaptime") or 0)

    def snapshot(self, node, vmid, kind, name, description=""):
        """Take a snapshot of the guest's disks and wait for it; returns the task id."""
        params = {"snapname": checked_snapshot(name)}
        if description:
            params["description"] = description
        return self._run(self.call("post", f"{self._guest_path(node, vmid, kind)}/snapshot", **params))

    def delete_snapshot(self, node, vmid, kind, name):
        path = f"{self._guest_path(node, vmid, kind)}/snapshot/{checked_snapshot(name)}"
        return self._run(self.call("delete", path))

    def rollback(self, node, vmid, kind, name, start=True):
        """Put the guest's disks back as they were at the snapshot (the guest stops for it), then start it when
        start; waits, and returns the task id."""
        path = f"{self._guest_path(node, vmid, kind)}/snapshot/{checked_snapshot(name)}/rollback"
        return self._run(self.call("post", path, start=1 if start else 0))

    def root_disk_storage(self, node, vmid, kind):
        """(storage id, its type) of the guest's root disk (a container's rootfs, a VM's first disk)."""
        config = self.guest_config(node, vmid, kind)
        keys = ("rootfs",) if kind == "lxc" else DISK_KEYS
        volume = next((str(config[key]) for key in keys if config.get(key)), None)
        if volume is None:
            raise ProxmoxError(f"{kind} {vmid} has no root disk in its config")
        storage = volume.split(",", 1)[0].split(":", 1)[0]
        found = self.call("get", f"nodes/{checked_node(node)}/storage", storage=checked_storage(storage)) or []
        return storage, (found[0].get("type") if found else None)

    # -- backups -----------------------------------------------------------------------------

    def vzdump(self, node, vmid, storage, *, mode="snapshot", compress="zstd", notes=None):
        """Start a backup of one guest to storage; returns the task id without waiting (the caller records it)."""
        params = {"vmid": str(checked_vmid(vmid)), "storage": checked_storage(storage), "mode": mode,
                  "compress": compress, "remove": 0}
        if notes:
            params["notes-template"] = notes
        return self.call("post", f"nodes/{checked_node(node)}/vzdump", **params)

    def backups(self, node, storage, vmid=None):
        """The backups on storage (of one guest with vmid), oldest first: {"volid", "size", "ctime", "format",
        "vmid", ...} as Proxmox lists them."""
        params = {"content": "backup"}
        if vmid is not None:
            params["vmid"] = checked_vmid(vmid)
        found = self.call("get", f"nodes/{checked_node(node)}/storage/{checked_storage(storage)}/content", **params)
        return sorted(found or [], key=lambda entry: entry.get("ctime") or 0)

    def delete_volume(self, node, storage, volid):
        """Remove a volume (a backup) from storage; waits when Proxmox answers with a task."""
        path = f"nodes/{checked_node(node)}/storage/{checked_storage(storage)}/content/{quote(volid, safe='')}"
        return self._run(self.call("delete", path))

    def prune_plan(self, node, storage, vmid, kind, keep):
        """Proxmox's own prune selection for the guest's backups, without removing anything: [{"volid", "ctime",
        "mark": "keep" | "remove" | "protected" | ...}]."""
        options = ",".join(f"{key}={int(value)}" for key, value in sorted(keep.items()) if value)
        path = f"nodes/{checked_node(node)}/storage/{checked_storage(storage)}/prunebackups"
        return self.call("get", path, **{"prune-backups": options or "keep-all=1", "type": checked_kind(kind),
                                         "vmid": checked_vmid(vmid)}) or []

    def restore(self, node, vmid, kind, volid, *, storage, hostname=None, ip_cidr=None, tags=()):
        """Start making a new guest vmid on node from a backup; returns the task id. A container gets a new
        hostname and address; a VM its address through cloud-init, set afterwards (configure_vm)."""
        if kind == "lxc":
            network = f"name=eth0,bridge={self.settings.bridge},{self.network_config(ip_cidr)}"
            params = {"vmid": checked_vmid(vmid), "ostemplate": volid, "restore": 1,
                      "storage": checked_storage(storage), "unique": 1, "net0": network, "tags": join_tags(tags)}
            if hostname:
                params["hostname"] = hostname
            return self.call("post", f"nodes/{checked_node(node)}/lxc", **params)
        params = {"vmid": checked_vmid(vmid), "archive": volid, "storage": checked_storage(storage), "unique": 1}
        return self.call("post", f"nodes/{checked_node(node)}/qemu", **params)

    # -- addresses --------------------------------------------------------------------------

    def guest_ip(self, node, vmid, kind, timeout=None):
        """Poll until the guest reports a usable IPv4 address (LXC interfaces, or the VM's guest agent)."""
        deadline = self._clock() + (timeout or self.settings.ip_timeout)
        interval = 0.1
        last_error = None
        while True:
            try:
                address = self._find_ip(node, vmid, kind)
                if address:
                    return address
            except ProxmoxError as exc:
                # The guest agent answers errors until it has started inside the VM.
                last_error = exc.message
            if self._clock() > deadline:
                detail = f" (last answer: {last_error})" if last_error else ""
                raise ProxmoxTimeout(f"{kind} {vmid} reported no IPv4 address within "
                                     f"{timeout or self.settings.ip_timeout} s{detail}")
            self._sleep(interval)
            interval = min(interval * 1.5, 2.0)

    def _find_ip(self, node, vmid, kind):
        base = f"nodes/{checked_node(node)}/{checked_kind(kind)}/{checked_vmid(vmid)}"
        if kind == "lxc":
            for interface in self.call("get", f"{base}/interfaces") or []:
                if interface.get("name") != "lo" and usable_ipv4(interface.get("inet") or "",
                                                                 self.settings.loopback_guests):
                    return interface["inet"].split("/")[0]
            return None
        answer = self.call("get", f"{base}/agent/network-get-interfaces") or {}
        for interface in answer.get("result", []):
            if interface.get("name") == "lo":
                continue
            for address in interface.get("ip-addresses", []):
                if address.get("ip-address-type") == "ipv4" and usable_ipv4(address.get("ip-address", ""),
                                                                            self.settings.loopback_guests):
                    return address["ip-address"]
        return None


def _to_gb(number, unit):
    factor = {"": 1 / 2**30, "K": 1 / 2**20, "M": 1 / 1024, "G": 1, "T": 1024}[unit]
    return int(number) * factor
