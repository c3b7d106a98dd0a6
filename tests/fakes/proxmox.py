"""An in-memory Proxmox cluster behind the ProxmoxClient methods the services call.

FakeProxmoxClient has the signatures of backend/proxmox/client.py's ProxmoxClient (nodes, choose_node,
next_vmid, check_vmid, guests, template_node, wait_for_task, create_lxc, clone_vm, configure_vm, grow_vm_disk,
grow_disk, set_size, start, stop, reboot, shutdown, status, destroy, guest_ip, call) and answers with the same
shapes, raising the same ProxmoxError classes where Proxmox would refuse: a taken VMID (GuestExists), a guest
that is not there, a locked or already running guest, a failed task (TaskFailed, with the task's log tail).

Like Proxmox, a create or clone answers with a task id at once: until the task ends the guest carries a
lock ("create", "clone") and has neither name nor tags. Every task is seen running `task_polls` + 1 times
before it ends: each look of a wait goes through the job's sleep (sleep(0): it notices a delete or the
deadline, as a real wait does, and takes no time), and each guests() call is a moment passing for every
running task. So a test decides how long an interrupted create stays locked, and nothing ever sleeps.

Faults and hooks apply to the calls the services make (a method's own inner calls, e.g. destroy's status,
are neither recorded nor faulted):
    fake.fail_next("start", TaskFailed("task vzstart failed: ..."))  # the next start raises that
    fake.fail_task("vzcreate", "unable to create CT 100 - disk full")  # the next such task fails
    fake.before("start", lambda *args, **kwargs: ..., once=True)  # runs before the next start (e.g. to delete
                                                                   # the row, or to take the VMID it wants)
and every call is in fake.calls (fake.calls_to("start") for one method's).

One module over 400 lines on purpose: one in-memory cluster, kept beside the client it stands in for.
"""
import copy
import dataclasses
import functools
import itertools
import re
from dataclasses import dataclass, field

from backend.proxmox.client import (
    checked_kind,
    checked_node,
    checked_vmid,
    join_tags,
    split_tags,
    upid_node,
    usable_ipv4,
)
from backend.proxmox.errors import GuestExists, ProxmoxError, ProxmoxTimeout, TaskFailed


@dataclass
class Call:
    """One call a service made: the method's name and its arguments as passed."""

    name: str
    args: tuple
    kwargs: dict


@dataclass
class FakeNode:
    name: str
    status: str = "online"
    cpus: int = 16
    memory_mb: int = 65536
    disk_gb: int = 1000


@dataclass
class FakeGuest:
    vmid: int
    node: str
    kind: str  # "lxc" or "qemu"
    name: str | None = None
    tags: list = field(default_factory=list)
    status: str = "stopped"
    template: bool = False
    lock: str | None = None
    cores: int = 1
    memory: int = 512
    disk_gb: int = 8
    address: str | None = None  # what the guest reports once it runs (None: no address yet)
    config: dict = field(default_factory=dict)  # the parameters it was created and configured with
    snapshots: dict = field(default_factory=dict)  # name -> snaptime


@dataclass
class FakeTask:
    upid: str
    node: str
    type: str  # Proxmox's task type: vzcreate, qmclone, vzstart, qmstart, vzshutdown, vzdestroy, ...
    vmid: int
    polls_left: int
    on_success: object = None  # what the task does to the cluster when it ends well
    on_failure: object = None  # ... and when it fails
    failure: str | None = None  # the exit status it will end with (None: OK)
    exitstatus: str | None = None  # set when it has ended
    log: list = field(default_factory=list)

    @property
    def running(self):
        return self.exitstatus is None

    def status(self):
        if self.running:
            return {"upid": self.upid, "node": self.node, "type": self.type, "id": str(self.vmid),
                    "status": "running"}
        return {"upid": self.upid, "node": self.node, "type": self.type, "id": str(self.vmid), "status": "stopped",
                "exitstatus": self.exitstatus}


def _api(method):
    """Record the call, run the hooks and injected faults, then the fake's own behaviour.

    Only the outermost call counts: a method the fake calls from another one is neither recorded nor faulted.
    """
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if self._depth:
            return method(self, *args, **kwargs)
        self.calls.append(Call(method.__name__, args, dict(kwargs)))
        self._depth += 1
        try:
            for hook in list(self._hooks.get(method.__name__, ())):
                hook(*args, **kwargs)
            faults = self._faults.get(method.__name__)
            if faults:
                raise faults.pop(0)
            return method(self, *args, **kwargs)
        finally:
            self._depth -= 1
    return wrapper


class FakeProxmoxClient:
    """An in-memory cluster with ProxmoxClient's methods. Every method raises ProxmoxError on failure."""

    def __init__(self, settings, nodes=("pve1",), *, task_polls=0, dhcp_address=None, sleep=None):
        self.settings = settings
        self.nodes_by_name = {}
        for node in nodes:
            node = node if isinstance(node, FakeNode) else FakeNode(node)
            self.nodes_by_name[node.name] = node
        self.guests_by_vmid = {}
        self.volumes = {}  # backups on the storages: volid -> content entry
        self.tasks = {}
        self.task_polls = task_polls
        # The address DHCP gives a guest (a static ip_cidr wins): 10.0.<vmid // 250>.<vmid % 250 + 2> by default.
        self.dhcp_address = dhcp_address or (lambda vmid: f"10.0.{vmid // 250}.{vmid % 250 + 2}")
        self.sleep = sleep or (lambda seconds: None)
        self.calls = []
        self.connection = None  # ProxmoxClient's: the proxmoxer handle a thread may reuse (the fake has none)
        self._faults = {}
        self._task_faults = {}
        self._hooks = {}
        self._depth = 0
        self._pids = itertools.count(0x1000)

    # -- what tests arrange and look at -----------------------------------------------------------------

    def add_template(self, vmid, node="pve1", *, kind="qemu", disk_gb=10, name=None):
        """A template guest (VMs are cloned from one)."""
        self.guests_by_vmid[vmid] = FakeGuest(vmid, node, kind, name=name or f"template-{vmid}", template=True,
                                              disk_gb=disk_gb, config={"scsi0": f"local-lvm:base-{vmid}-disk-0,"
                                                                                f"size={disk_gb}G"})
        return self.guests_by_vmid[vmid]

    def add_guest(self, vmid, node="pve1", kind="lxc", **fields):
        """A guest that exists already (made outside the services, or by an earlier run)."""
        self.guests_by_vmid[vmid] = FakeGuest(vmid, node, kind, **fields)
        return self.guests_by_vmid[vmid]

    def guest(self, vmid):
        """The guest at vmid, or None."""
        return self.guests_by_vmid.get(vmid)

    def vmids(self):
        """The VMIDs of every guest that is not a template."""
        return sorted(v for v, g in self.guests_by_vmid.items() if not g.template)

    def fail_next(self, method, error, times=1):
        """The next `times` calls of method raise error (before doing anything)."""
        self._faults.setdefault(method, []).extend([error] * times)

    def fail_task(self, task_type, exitstatus, log=None):
        """The next task of this type ends with exitstatus instead of OK (its effect undone, as Proxmox does)."""
        self._task_faults.setdefault(task_type, []).append((exitstatus, list(log or [exitstatus])))

    def before(self, method, hook, once=False):
        """hook(*args, **kwargs) runs before every call of method (only the next one, with once), and may raise."""
        if once:
            def hook_once(*args, _hook=hook, **kwargs):
                self._hooks[method].remove(hook_once)
                return _hook(*args, **kwargs)
            self._hooks.setdefault(method, []).append(hook_once)
        else:
            self._hooks.setdefault(method, []).append(hook)

    def calls_to(self, method):
        return [call for call in self.calls if call.name == method]

    def call_names(self):
        return [call.name for call in self.calls]

    # -- tasks ----------------------------------------------------------------------------------------------

    def _task(self, node, task_type, vmid, on_success=None, on_failure=None, log=()):
        upid = f"UPID:{node}:{next(self._pids):08X}:00000000:00000000:{task_type}:{vmid}:{self.settings.user}:"
        task = FakeTask(upid, node, task_type, vmid, self.task_polls, on_success, on_failure, log=list(log))
        faults = self._task_faults.get(task_type)
        if faults:
            task.failure, extra = faults.pop(0)
            task.log += extra
        self.tasks[upid] = task
        return upid

    def _end(self, task):
        if not task.running:
            return
        if task.failure is None:
            task.exitstatus = "OK"
            task.log.append("TASK OK")
            if task.on_success:
                task.on_success()
        else:
            task.exitstatus = task.failure
            task.log.append(f"TASK ERROR: {task.failure}")
            if task.on_failure:
                task.on_failure()

    def _tick(self):
        """A moment passes: every running task is seen once more, and ends when its polls are spent."""
        for task in list(self.tasks.values()):
            if task.running:
                task.polls_left -= 1
                if task.polls_left < 0:
                    self._end(task)

    def finish_tasks(self):
        """Let every running task end (as the cluster would, given time)."""
        for task in list(self.tasks.values()):
            self._end(task)

    def _failed(self, task):
        return TaskFailed(f"task {task.type} failed: {task.exitstatus}", log_tail=task.log[-5:])

    def _wait(self, upid):
        task = self.tasks.get(upid)
        if task is None:
            raise ProxmoxError("no such task", status=400, errors={"upid": "no such task"})
        while task.running:
            self.sleep(0)  # the job's own sleep: notices a delete or the deadline, and takes no time
            task.polls_left -= 1
            if task.polls_left < 0:
                self._end(task)
        if task.exitstatus != "OK":
            raise self._failed(task)
        return task.status()

    def _run(self, node, task_type, vmid, change, log=(), failure=None):
        """A call that waits for its task (as ProxmoxClient's _run does): returns the task id once it ended."""
        upid = self._task(node, task_type, vmid, on_success=change, log=log)
        if failure is not None:
            self.tasks[upid].failure = failure
        self._wait(upid)  # seen running once at least (a sleep of the job's, which may stop it there)
        return upid

    # -- the ProxmoxClient methods -------------------------------------------------------------------------

    def _find(self, node, vmid, kind, *, unlocked=True):
        checked_node(node)
        checked_kind(kind)
        vmid = checked_vmid(vmid)
        guest = self.guests_by_vmid.get(vmid)
        if guest is None or guest.node != node or guest.kind != kind:
            prefix = "lxc" if kind == "lxc" else "qemu-server"
            raise ProxmoxError(f"Configuration file 'nodes/{node}/{prefix}/{vmid}.conf' does not exist", status=500)
        if unlocked and guest.lock:
            raise ProxmoxError(f"{'CT' if kind == 'lxc' else 'VM'} is locked ({guest.lock})", status=500)
        return guest

    def _word(self, kind):
        return "CT" if kind == "lxc" else "VM"

    @_api
    def call(self, method, path, **params):
        """The API paths the services ask for directly: the version and a task's log."""
        if method == "get" and path == "version":
            return {"version": "8.2.4", "release": "8.2", "repoid": "fake"}
        match = re.fullmatch(r"nodes/([^/]+)/tasks/([^/]+)/(log|status)", path)
        if method == "get" and match and match.group(2) in self.tasks:
            task = self.tasks[match.group(2)]
            if match.group(3) == "status":
                return task.status()
            start, limit = int(params.get("start", 0)), int(params.get("limit", 50))
            return [{"n": n + 1, "t": line} for n, line in enumerate(task.log)][start:start + limit]
        if match:
            raise ProxmoxError("no such task", status=400, errors={"upid": "no such task"})
        raise ProxmoxError(f"the fake cluster does not serve {method.upper()} {path}", status=501)

    @_api
    def nodes(self):
        result = []
        for node in self.nodes_by_name.values():
            guests = [g for g in self.guests_by_vmid.values() if g.node == node.name]
            used_memory = sum(g.memory for g in guests if g.status == "running")
            used_disk = sum(g.disk_gb for g in guests)
            result.append({
                "node": node.name, "status": node.status, "cpu": 0.05, "maxcpu": node.cpus,
                "free_memory_mb": node.memory_mb - used_memory, "total_memory_mb": node.memory_mb,
                "free_disk_gb": node.disk_gb - used_disk if node.status == "online" else None,
            })
        return result

    @_api
    def choose_node(self, memory_mb, disk_gb, template_node=None):
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

    @_api
    def next_vmid(self):
        return next(v for v in itertools.count(100) if v not in self.guests_by_vmid)

    @_api
    def check_vmid(self, vmid):
        vmid = checked_vmid(vmid)
        if vmid in self.guests_by_vmid:
            raise ProxmoxError("Parameter verification failed.", status=400,
                               errors={"vmid": f"VM {vmid} already exists"})
        return vmid

    @_api
    def guests(self, tag=None):
        self._tick()
        found = []
        for guest in sorted(self.guests_by_vmid.values(), key=lambda g: g.vmid):
            if tag is None or tag in guest.tags:
                found.append({"vmid": guest.vmid, "node": guest.node, "type": guest.kind, "status": guest.status,
                              "name": guest.name, "tags": list(guest.tags), "template": guest.template,
                              "lock": guest.lock})
        return found

    @_api
    def template_node(self, template_id):
        guest = self.guests_by_vmid.get(template_id)
        if guest is None or guest.kind != "qemu":
            raise ProxmoxError(f"VM template {template_id} not found in the cluster")
        return guest.node

    @_api
    def wait_for_task(self, upid, timeout=None):
        upid_node(upid)
        return self._wait(upid)

    def _network(self, ip_cidr):
        if ip_cidr:
            return f"ip={ip_cidr}" + (f",gw={self.settings.gateway}" if self.settings.gateway else "")
        return "ip=dhcp"

    def _address(self, vmid, ip_cidr):
        return ip_cidr.split("/")[0] if ip_cidr else self.dhcp_address(vmid)

    @_api
    def create_lxc(self, node, vmid, *, hostname, cores, memory, disk, tags, ip_cidr=None, swap=512):
        checked_node(node)
        vmid = checked_vmid(vmid)
        if node not in self.nodes_by_name:
            raise ProxmoxError(f"hostname lookup '{node}' failed - failed to get address info", status=500)
        if vmid in self.guests_by_vmid:
            raise GuestExists(f"CT {vmid} already exists on node '{self.guests_by_vmid[vmid].node}'", status=500)
        tag_list = join_tags(tags)
        config = {"hostname": hostname, "cores": int(cores), "memory": int(memory), "swap": int(swap),
                  "rootfs": f"{self.settings.storage}:{int(disk)}", "ostemplate": self.settings.lxc_template,
                  "net0": f"name=eth0,bridge={self.settings.bridge},{self._network(ip_cidr)}", "unprivileged": 1,
                  "onboot": 1, "tags": tag_list}
        if self.settings.ssh_public_key:
            config["ssh-public-keys"] = self.settings.ssh_public_key
        guest = self.guests_by_vmid[vmid] = FakeGuest(vmid, node, "lxc", lock="create", cores=int(cores),
                                                      memory=int(memory), disk_gb=int(disk), config=config,
                                                      address=self._address(vmid, ip_cidr))

        def created():
            guest.lock, guest.name, guest.tags = None, hostname, split_tags(tag_list)

        def removed():
            self.guests_by_vmid.pop(vmid, None)
        return self._task(node, "vzcreate", vmid, created, removed,
                          log=[f"extracting archive '{self.settings.lxc_template}'"])

    @_api
    def clone_vm(self, node, vmid, *, name, template_id=None):
        template_id = template_id or self.settings.vm_template_id
        if not template_id:
            raise ProxmoxError("no VM template configured (PROXMOX_VM_TEMPLATE_ID)")
        checked_node(node)
        vmid = checked_vmid(vmid)
        template = self.guests_by_vmid.get(template_id)
        if template is None or template.node != node or template.kind != "qemu":
            raise ProxmoxError(f"Configuration file 'nodes/{node}/qemu-server/{template_id}.conf' does not exist",
                               status=500)
        if not template.template:
            raise ProxmoxError(f"VM {template_id} is not a template", status=500)
        if vmid in self.guests_by_vmid:
            raise GuestExists(f"VM {vmid} already exists on node '{self.guests_by_vmid[vmid].node}'", status=500)
        guest = self.guests_by_vmid[vmid] = FakeGuest(vmid, node, "qemu", lock="clone", disk_gb=template.disk_gb,
                                                      config=copy.deepcopy(template.config),
                                                      address=self._address(vmid, None))

        def cloned():
            guest.lock, guest.name = None, name
            guest.config["name"] = name

        def removed():
            self.guests_by_vmid.pop(vmid, None)
        return self._task(node, "qmclone", vmid, cloned, removed, log=[f"create full clone of drive scsi0 "
                                                                        f"(local-lvm:base-{template_id}-disk-0)"])

    @_api
    def configure_vm(self, node, vmid, *, cores, memory, tags, ip_cidr=None):
        guest = self._find(node, vmid, "qemu")
        tag_list = join_tags(tags)
        guest.cores, guest.memory, guest.tags = int(cores), int(memory), split_tags(tag_list)
        guest.address = self._address(guest.vmid, ip_cidr)
        guest.config.update(cores=int(cores), memory=int(memory), ciuser=self.settings.ci_user,
                            ipconfig0=self._network(ip_cidr), agent="1", onboot=1, tags=tag_list)
        if self.settings.ssh_public_key:
            guest.config["sshkeys"] = self.settings.ssh_public_key.strip()

    @_api
    def grow_vm_disk(self, node, vmid, disk_gb):
        self.grow_disk(node, vmid, "qemu", disk_gb)

    @_api
    def grow_disk(self, node, vmid, kind, disk_gb):
        guest = self._find(node, vmid, kind)
        if disk_gb > guest.disk_gb:
            def grow():
                guest.disk_gb = int(disk_gb)
            self._run(node, "resize", guest.vmid, grow)

    @_api
    def set_size(self, node, vmid, kind, *, cores, memory):
        guest = self._find(node, vmid, kind)
        guest.cores, guest.memory = int(cores), int(memory)
        guest.config.update(cores=int(cores), memory=int(memory))

    def _power(self, node, vmid, kind, action, to_status):
        """As Proxmox answers (and backend/simulation/fake_proxmox.py models it): a container refuses a start
        while it runs and any other action while it is stopped at once; a VM's task fails instead."""
        guest = self._find(node, vmid, kind, unlocked=False)
        running = guest.status == "running"
        error = None
        if action == "start":
            if running and kind == "lxc":
                raise ProxmoxError(f"CT {guest.vmid} already running", status=500)
            if guest.template:
                error = "you can't start a vm if it's a template"
            elif running:
                error = f"VM {guest.vmid} already running"
        elif not running and kind == "lxc":
            raise ProxmoxError(f"CT {guest.vmid} not running", status=500)
        elif not running and action in ("shutdown", "reboot"):
            error = f"VM {guest.vmid} not running"
        if error is None and guest.lock:
            error = f"{self._word(kind)} is locked ({guest.lock})"

        def change():
            guest.status = to_status
        prefix = "vz" if kind == "lxc" else "qm"
        return self._run(node, f"{prefix}{action}", guest.vmid, change, failure=error)

    @_api
    def start(self, node, vmid, kind):
        return self._power(node, vmid, kind, "start", "running")

    @_api
    def stop(self, node, vmid, kind):
        return self._power(node, vmid, kind, "stop", "stopped")

    @_api
    def reboot(self, node, vmid, kind):
        return self._power(node, vmid, kind, "reboot", "running")

    @_api
    def shutdown(self, node, vmid, kind, timeout=60):
        try:
            return self._power(node, vmid, kind, "shutdown", "stopped")
        except (TaskFailed, ProxmoxTimeout):
            return self.stop(node, vmid, kind)  # as ProxmoxClient does: a shutdown that fails becomes a stop

    @_api
    def status(self, node, vmid, kind):
        guest = self._find(node, vmid, kind, unlocked=False)
        running = guest.status == "running"
        return {"status": guest.status, "cpu": 0.01 if running else 0, "cpus": guest.cores,
                "memory_mb": guest.memory // 4 if running else 0, "max_memory_mb": guest.memory,
                "disk_gb": 1.0, "max_disk_gb": float(guest.disk_gb), "uptime": 60 if running else 0}

    @_api
    def destroy(self, node, vmid, kind):
        guest = self._find(node, vmid, kind)
        if guest.status == "running":
            self.stop(node, vmid, kind)

        def remove():
            self.guests_by_vmid.pop(guest.vmid, None)
        return self._run(node, f"{'vz' if kind == 'lxc' else 'qm'}destroy", guest.vmid, remove)

    # -- snapshots and backups (volumes live on self.volumes: volid -> entry) --------------------------------

    @_api
    def root_disk_storage(self, node, vmid, kind):
        self._find(node, vmid, kind, unlocked=False)
        return self.settings.storage, "lvmthin"

    @_api
    def snapshots(self, node, vmid, kind):
        guest = self._find(node, vmid, kind, unlocked=False)
        return [{"name": name, "snaptime": time, "description": ""}
                for name, time in sorted(guest.snapshots.items(), key=lambda item: item[1])]

    @_api
    def snapshot(self, node, vmid, kind, name, description=""):
        guest = self._find(node, vmid, kind)
        error = f"snapshot name '{name}' already used" if name in guest.snapshots else None

        def take():
            guest.snapshots[name] = len(self.tasks) + 1000
        return self._run(node, f"{'vz' if kind == 'lxc' else 'qm'}snapshot", guest.vmid, take, failure=error)

    @_api
    def delete_snapshot(self, node, vmid, kind, name):
        guest = self._find(node, vmid, kind)
        error = None if name in guest.snapshots else f"snapshot '{name}' does not exist"

        def remove():
            guest.snapshots.pop(name, None)
        return self._run(node, f"{'vz' if kind == 'lxc' else 'qm'}delsnapshot", guest.vmid, remove, failure=error)

    @_api
    def rollback(self, node, vmid, kind, name, start=True):
        guest = self._find(node, vmid, kind)
        error = None if name in guest.snapshots else f"snapshot '{name}' does not exist"

        def roll():
            guest.status = "running" if start else "stopped"
        return self._run(node, f"{'vz' if kind == 'lxc' else 'qm'}rollback", guest.vmid, roll, failure=error)

    @_api
    def vzdump(self, node, vmid, storage, *, mode="snapshot", compress="zstd", notes=None):
        guest = self._find(node, vmid, guest_kind_of(self, vmid))
        volumes = self.volumes
        stamp = len(self.tasks) + 1

        def dump():
            kind = "lxc" if guest.kind == "lxc" else "qemu"
            volid = f"{storage}:backup/vzdump-{kind}-{guest.vmid}-2026_12_06-00_00_{stamp:02d}.tar.zst"
            volumes[volid] = {"volid": volid, "size": 1000 + stamp, "ctime": 1_800_000_000 + stamp,
                              "vmid": guest.vmid, "format": "tar.zst", "content": "backup", "storage": storage,
                              "notes": notes or ""}
        return self._task(node, "vzdump", guest.vmid, on_success=dump)

    @_api
    def backups(self, node, storage, vmid=None):
        volumes = self.volumes
        return sorted((v for v in volumes.values() if v["storage"] == storage and vmid in (None, v["vmid"])),
                      key=lambda v: v["ctime"])

    @_api
    def delete_volume(self, node, storage, volid):
        volumes = self.volumes
        if volid not in volumes:
            raise ProxmoxError(f"volume '{volid}' does not exist", status=500)
        volumes.pop(volid)
        return None

    @_api
    def prune_plan(self, node, storage, vmid, kind, keep):
        """keep-last only (the real selection is the fake Proxmox's, tests/test_fake_proxmox_backups.py)."""
        mine = sorted((v for v in self.volumes.values() if v["storage"] == storage and v["vmid"] == vmid),
                      key=lambda v: v["ctime"], reverse=True)
        last = keep.get("keep-last") or len(mine)
        return [{"volid": v["volid"], "ctime": v["ctime"], "mark": "keep" if n < last else "remove"}
                for n, v in enumerate(mine)]

    @_api
    def restore(self, node, vmid, kind, volid, *, storage, hostname=None, ip_cidr=None, tags=()):
        volumes = self.volumes
        if volid not in volumes:
            raise ProxmoxError(f"volume '{volid}' does not exist", status=500)
        vmid = checked_vmid(vmid)
        if vmid in self.guests_by_vmid:
            raise GuestExists(f"CT {vmid} already exists on node '{node}'", status=500)
        guest = FakeGuest(vmid, node, kind, name=hostname, tags=list(tags), lock="create",
                          address=self._address(vmid, ip_cidr))
        self.guests_by_vmid[vmid] = guest

        def restored():
            guest.lock = None

        def removed():
            self.guests_by_vmid.pop(vmid, None)
        return self._task(node, "vzrestore" if kind == "lxc" else "qmrestore", vmid, on_success=restored,
                          on_failure=removed)

    @_api
    def guest_ip(self, node, vmid, kind, timeout=None):
        guest = self._find(node, vmid, kind, unlocked=False)
        self.sleep(0)
        address = guest.address if guest.status == "running" else None
        if address and usable_ipv4(address, self.settings.loopback_guests):
            return address
        raise ProxmoxTimeout(f"{kind} {guest.vmid} reported no IPv4 address within "
                             f"{timeout or self.settings.ip_timeout} s")


def guest_kind_of(fake, vmid):
    guest = fake.guests_by_vmid.get(int(vmid))
    return guest.kind if guest is not None else "lxc"


class FakeProxmoxClients:
    """backend.platform.ProxmoxClients around one FakeProxmoxClient (every job and request shares it)."""

    def __init__(self, client, quick_timeout=3):
        self.client = client
        self.settings = client.settings
        self.quick_settings = dataclasses.replace(client.settings, timeout=quick_timeout, retries=0)
        self.job_sleeps = []
        self.kept = []

    def job_client(self, sleep):
        """The fake client, its waits going through sleep (the job's own, as a real job client's do)."""
        self.job_sleeps.append(sleep)
        self.client.sleep = sleep
        return self.client

    def keep_connection(self, client):
        self.kept.append(client)

    def quick_client(self):
        return self.client
