"""The records the fake cluster is made of: nodes, storages, guests and tasks, and the disk sizes and config
digests the server computes from a guest's config."""
import hashlib
import re
import time
from dataclasses import dataclass, field

from backend.simulation.pve_schema import parse_boolean

KIB, MIB, GIB = 1024, 1024 ** 2, 1024 ** 3
LXC_DISK = re.compile(r"^(rootfs|mp\d+)$")
QEMU_DISK = re.compile(r"^(ide|sata|scsi|virtio)\d+$|^(efidisk0|tpmstate0)$")

# Locks under which a guest's config is still being written (pve-container create, qemu-server clone).
BEING_MADE = ("create", "clone")


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


# Storage types whose volumes can be snapshotted whatever their format (PVE's volume_has_feature 'snapshot'),
# and the file-based ones, where only a qcow2 image can.
SNAPSHOT_TYPES = frozenset({"lvmthin", "zfspool", "rbd", "btrfs", "zfs"})
FILE_TYPES = frozenset({"dir", "nfs", "cifs", "cephfs", "glusterfs"})


class Storage:
    """A storage: its content types and capacity, on every node unless `nodes` names some.

    total is its capacity in bytes: what guests' disks and backups on it take counts against it, and a backup
    that does not fit in what is left fails (the way to make a storage full: a small total). prune_backups is
    its own retention (the storage config's `prune-backups`, e.g. "keep-last=3"), used when a prune names none.
    """

    def __init__(self, storage, type="lvmthin", content="images,rootdir", total=1024 * GIB,
                 shared=False, nodes=None, prune_backups=None):
        """Describe a storage as /nodes/{node}/storage lists it."""
        self.storage = storage
        self.type = type
        self.content = content
        self.total = total
        self.shared = bool(shared)
        self.nodes = set(nodes) if nodes else None
        self.prune_backups = prune_backups

    def on(self, node):
        """True when the storage is available on the node."""
        return self.nodes is None or node in self.nodes

    def holds(self, content):
        """True when the storage accepts a content type (rootdir, images, vztmpl...)."""
        return content in self.content.split(",")

    @property
    def snapshots(self):
        """True when every volume on it can be snapshotted (lvmthin, zfspool, rbd, btrfs; not lvm, dir, nfs)."""
        return self.type in SNAPSHOT_TYPES

    def can_snapshot(self, volume):
        """True when this volume (its name after `storage:`) can be snapshotted: on a snapshot-capable type, or a
        qcow2 image on a file-based one."""
        return self.snapshots or (self.type in FILE_TYPES and volume.endswith(".qcow2"))


class Guest:
    """An LXC container or a QEMU VM: config (typed values), run state, lock, address."""

    def __init__(self, vmid, kind, node, config):
        """A stopped, unlocked guest, in existence from now."""
        self.vmid = vmid
        self.kind = kind  # "lxc" or "qemu"
        self.node = node
        self.config = config
        self.status = "stopped"
        self.lock = None
        self.started_at = None
        self.ipv4 = None
        # Its life on the wall clock, as its statistics (rrddata) are kept: since when it exists, and the
        # [started, stopped or None while it runs] spans it ran.
        self.created_at = time.time()
        self.runs = []
        self.snapshots = {}  # name -> Snapshot; the config's `parent` names the latest one taken or rolled back to

    def mark_running(self):
        """Running from now (the guest agent starts counting its delay here)."""
        self.status = "running"
        self.started_at = time.monotonic()
        self._end_run()
        self.runs.append([time.time(), None])

    def mark_stopped(self):
        """Stopped, with no uptime."""
        self.status = "stopped"
        self.started_at = None
        self._end_run()

    def _end_run(self):
        """Close the span it is running in, if any."""
        if self.runs and self.runs[-1][1] is None:
            self.runs[-1][1] = time.time()

    def seconds_running(self, start, end):
        """How many seconds of the wall-clock span [start, end) the guest ran."""
        now = time.time()
        return sum(max(0.0, min(end, stopped if stopped is not None else now) - max(start, started))
                   for started, stopped in self.runs)

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
        return next((disks[key] for key in sorted(disks, key=disk_order)), 0)

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
class Snapshot:
    """A guest snapshot as its config file keeps it: when, why, and the config at that moment (whose `parent`
    is the snapshot's parent)."""

    name: str
    snaptime: int
    description: str
    config: dict
    vmstate: bool = False

    @property
    def parent(self):
        """The snapshot this one was taken after (None for the first)."""
        return self.config.get("parent")


@dataclass
class Backup:
    """A vzdump archive on a storage: `{storage}:backup/vzdump-{kind}-{vmid}-{YYYY_MM_DD-HH_MM_SS}.{ext}`.

    config is the guest's config when it was taken (what a restore starts from); path the real file when a guest
    backend wrote one (None for a record-only backup); node where it was made (a storage that is not shared shows
    it there only).
    """

    storage: str
    filename: str
    vmid: int
    kind: str
    ctime: int
    size: int
    node: str
    config: dict = field(default_factory=dict)
    notes: str = ""
    protected: bool = False
    path: object = None

    @property
    def volid(self):
        """storage:backup/filename."""
        return f"{self.storage}:backup/{self.filename}"

    @property
    def format(self):
        """What the content list calls its format: tar.zst, vma.gz, tar..."""
        return self.filename.partition(".")[2]


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


class TaskFailure(Exception):
    """What a task's real work raises to end the task with exitstatus, after adding `log` lines to its log (vzdump
    fails with `job errors` and says why in its log)."""

    def __init__(self, exitstatus, log=()):
        """Keep the exit status and the log lines."""
        super().__init__(exitstatus)
        self.exitstatus = exitstatus
        self.log = list(log)


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
    text = "\n".join(f"{key}: {value}" for key, value in sorted(config.items()))
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()  # Proxmox's digest format
