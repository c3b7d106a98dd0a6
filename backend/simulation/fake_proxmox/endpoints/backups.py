"""Backups: POST /nodes/{node}/vzdump, a storage's content (GET /nodes/{node}/storage/{storage}/content, DELETE
.../content/{volume}) and its pruning (GET and DELETE /nodes/{node}/storage/{storage}/prunebackups).

As pve-manager's PVE::API2::VZDump and PVE::VZDump do it:
- vzdump answers a UPID (type vzdump, id the vmid when there is one guest), or the string "OK" when every guest
  named runs on another node. The storage is checked in the task: a storage that is not there, or holds no
  backups, fails it with `could not get storage information for 'X': ...`. A guest that cannot be backed up
  (locked, unknown, no room left on the storage) does not fail the request: its part of the log says
  `ERROR: Backup of VM 101 failed - CT is locked (snapshot)` and the task ends with `job errors`. A storage
  full is written as the compressor reports it (`zstd: error 70 : Write error : cannot write block : No space
  left on device` in the log of a container; `job failed with err -28 - No space left on device` for a VM).
- Each guest carries the lock `backup` while its backup runs. A backup is
  `{storage}:backup/vzdump-{lxc|qemu}-{vmid}-{YYYY_MM_DD-HH_MM_SS}.{tar|vma}[.zst|.gz|.lzo]` (compress 0, zstd,
  gzip, lzo or 1 = lzo; the timestamp in local time is its ctime; the fake moves it a second on when a backup of
  the guest already has that name). With remove=1 (the default) the guest's backups on the storage are pruned
  afterwards by prune-backups (the request's, else the storage's, else keep-all).
- The options maxfiles, prune-backups, tmpdir, dumpdir, script, bwlimit and ionice are root@pam's alone: an API
  token (root@pam!paas too) is refused with `Only root may set this option.`
- content lists backups (and guests' disks) sorted by volid; deleting a volume is a task (imgdel) unless `delay`
  lets it finish first (then null); a prune is a task (prunebackups), its dry run (GET) a list with marks.
"""
import re
import time
from dataclasses import dataclass, field

from backend.simulation.fake_proxmox.endpoints.cluster_info import storage_used
from backend.simulation.fake_proxmox.endpoints.snapshots import unsnapshottable
from backend.simulation.fake_proxmox.model import GIB, MIB, Backup, TaskFailure
from backend.simulation.fake_proxmox.protocol import ApiError, parameter_error
from backend.simulation.fake_proxmox.retention import (
    RetentionError,
    format_retention,
    mark_backup_group,
    parse_retention,
)
from backend.simulation.pve_schema import split_list

ROOT_ONLY = ("maxfiles", "prune-backups", "tmpdir", "dumpdir", "script", "bwlimit", "ionice")
COMPRESSION = {"0": None, "1": "lzo", "lzo": "lzo", "gzip": "gz", "zstd": "zst"}  # compress -> file extension
# What share of a guest's data its archive takes, per compression; and how much of its disks a guest uses.
RATIOS = {None: 1.0, "lzo": 0.6, "gz": 0.5, "zst": 0.45}
DATA_SHARE = {"lxc": 0.2, "qemu": 0.25}
BACKUP_NAME = re.compile(r"^vzdump-(lxc|qemu)-([1-9]\d{2,8})-(\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2})"
                         r"\.(tar|vma)(?:\.(zst|gz|lzo))?$")
# How each compressor says that the storage is full (a container's archive is tar piped into it).
NO_SPACE = {
    "zst": ("zstd: error 70 : Write error : cannot write block : No space left on device", 70),
    "gz": ("gzip: stdout: No space left on device", 1),
    "lzo": ("lzop: No space left on device", 1),
    None: ("tar: -: Cannot write: No space left on device", 2),
}


@dataclass
class BackupJob:
    """One guest's part of a vzdump task: the backup it makes, or why it cannot."""

    vmid: int
    guest: object = None
    backup: Backup = None
    problem: str = None
    no_space: bool = False
    locked: bool = False
    pruned: list = field(default_factory=list)

    @property
    def ok(self):
        """True when this guest's backup was made."""
        return self.problem is None and not self.no_space


def backup_filename(kind, vmid, ctime, extension):
    """vzdump-{kind}-{vmid}-{YYYY_MM_DD-HH_MM_SS}.{tar|vma}[.ext], the time in local time as vzdump names it."""
    stamp = time.strftime("%Y_%m_%d-%H_%M_%S", time.localtime(ctime))
    archive = "tar" if kind == "lxc" else "vma"
    return f"vzdump-{kind}-{vmid}-{stamp}.{archive}" + (f".{extension}" if extension else "")


def dump_dir(storage):
    """Where the storage keeps backups on a node, as vzdump's log names it."""
    return "/var/lib/vz/dump" if storage.storage == "local" else f"/mnt/pve/{storage.storage}/dump"


def estimated_size(guest, extension):
    """A plausible archive size for a guest without real files: a share of its disks, compressed."""
    disks = sum(guest.disks().values()) or GIB
    return int(disks * DATA_SHARE[guest.kind] * RATIOS[extension])


def human(size):
    """Sizes as vzdump logs them."""
    if size >= GIB:
        return f"{size / GIB:.2f}GB"
    return f"{size / MIB:.0f}MB" if size >= MIB else f"{size / 1024:.0f}KB"


def expand_notes(template, cluster, guest, node):
    """notes-template with {{cluster}}, {{guestname}}, {{node}} and {{vmid}} filled in."""
    values = {"cluster": cluster.clustername, "guestname": guest.name, "node": node, "vmid": str(guest.vmid)}
    return re.sub(r"\{\{(cluster|guestname|node|vmid)\}\}", lambda match: values[match.group(1)], template)


def require_storage(cluster, name, node):
    """The Storage on the node, or the server's `storage 'X' does not exist` (500)."""
    storage = cluster.storage_on(name, node)
    if storage is None:
        raise ApiError(500, f"storage '{name}' does not exist")
    return storage


# --- vzdump ---------------------------------------------------------------------------------------

def check_vzdump_params(params, user):
    """The refusals PVE::API2::VZDump makes before it starts a task (400)."""
    errors = {key: "Only root may set this option." for key in ROOT_ONLY if key in params and user != "root@pam"}
    if str(params.get("stdout", "0")) == "1":
        errors["stdout"] = "option is only allowed on the command line interface."
    if str(params.get("all", "0")) == "1" and params.get("vmid"):
        errors["all"] = "option conflicts with option 'vmid'"
    if not (str(params.get("all", "0")) == "1" or str(params.get("stop", "0")) == "1" or params.get("pool")
            or params.get("vmid")):
        errors["vmid"] = "property is missing"
    if params.get("prune-backups") and "prune-backups" not in errors:
        try:
            parse_retention(params["prune-backups"])
        except RetentionError as exc:
            errors["prune-backups"] = f"invalid format - {exc}\n"
    if errors:
        raise parameter_error(errors)


def guests_to_back_up(cluster, params, node):
    """The vmids this node backs up (its own, and unknown ones, which fail visibly); None when all are elsewhere."""
    if params.get("pool"):
        raise ApiError(500, f"pool '{params['pool']}' does not exist")
    if str(params.get("all", "0")) == "1":
        excluded = {int(vmid) for vmid in split_list(str(params.get("exclude", "")))}
        return sorted(vmid for vmid, guest in cluster.guests.items() if guest.node == node and vmid not in excluded)
    wanted = [int(vmid) for vmid in split_list(str(params.get("vmid", "")))]
    local = [vmid for vmid in wanted if vmid not in cluster.guests or cluster.guests[vmid].node == node]
    return local or None


def storage_problem(cluster, params, node):
    """(Storage, None) or (None, the error the task fails with: PVE::VZDump->new's words)."""
    if params.get("dumpdir"):
        if params.get("storage"):
            return None, "cannot use options 'storage' and 'dumpdir' at the same time"
        return None, f"dumpdir '{params['dumpdir']}' does not exist"
    name = params.get("storage") or "local"
    storage = cluster.storage_on(name, node)
    if storage is None:
        return None, f"could not get storage information for '{name}': storage '{name}' does not exist"
    if not storage.holds("backup"):
        return None, (f"could not get storage information for '{name}': can't use storage '{name}' for backups - "
                      "wrong content type")
    return storage, None


def vzdump(cluster, request):
    """POST /nodes/{node}/vzdump: a task that backs up the guests named (vmid list, or all) to a storage."""
    node = cluster.online_node(request.path_values["node"]).name
    params = request.params
    check_vzdump_params(params, request.user)
    vmids = guests_to_back_up(cluster, params, node)
    if vmids is None:
        return "OK"
    task_id = vmids[0] if len(vmids) == 1 else ""
    header = ["INFO: starting new backup job: vzdump " + " ".join(
        [",".join(map(str, vmids)) if params.get("vmid") else "--all 1",
         *(f"--{key} {value}" for key, value in sorted(params.items()) if key not in ("vmid", "all"))])]
    storage, error = storage_problem(cluster, params, node)
    if error:
        return cluster.start_task(node, "vzdump", task_id, request.user, error=error)

    extension = COMPRESSION[str(params.get("compress", "0"))]
    mode = params.get("mode", "snapshot")
    keep = parse_retention(params.get("prune-backups") or storage.prune_backups or "keep-all=1")
    prune = str(params.get("remove", "1")) == "1" and "keep-all" not in keep
    backend = cluster.guest_backend
    jobs = plan_jobs(cluster, params, node, storage, vmids, extension, sized=backend is None)
    for job in jobs:
        if job.problem is None:
            job.guest.lock, job.locked = "backup", True
    outcome = {}

    def run():
        """Back the guests up (for real with a guest backend), prune, and say how it went."""
        lines = run_jobs(cluster, jobs, storage, node, mode, extension, keep if prune else None)
        failed = not all(job.ok for job in jobs)
        outcome["status"] = "job errors" if failed else "OK"
        lines.append(f"INFO: Backup job finished {'with errors' if failed else 'successfully'}")
        if failed:
            raise TaskFailure("job errors", lines)
        return lines

    def finish(task):
        """Record the backups made, remove what the prune let go, unlock the guests."""
        applied = task.exitstatus == outcome.get("status")  # not when an injected failure ended it first
        for job in jobs:
            if job.locked and job.guest.lock == "backup":
                job.guest.lock = None
            if not (applied and job.ok):
                continue
            cluster.backups[job.backup.volid] = job.backup
            for volid in job.pruned:
                remove_backup(cluster, cluster.backups.get(volid))

    if backend is None:
        log, error = header, None
        try:
            log = header + run()
        except TaskFailure as failure:
            log, error = header + failure.log, failure.exitstatus
        return cluster.start_task(node, "vzdump", task_id, request.user, log=log, error=error, on_end=finish)
    return cluster.start_task(node, "vzdump", task_id, request.user, log=header, on_end=finish, work=run)


def plan_jobs(cluster, params, node, storage, vmids, extension, sized):
    """A BackupJob per guest: its Backup to be (named, sized when sized) or the reason it cannot be made."""
    started = int(time.time())
    taken = set(cluster.backups)
    jobs = []
    for vmid in vmids:
        guest = cluster.guests.get(vmid)
        job = BackupJob(vmid, guest)
        jobs.append(job)
        if guest is None or guest.node != node:
            job.problem = f"unable to find configuration file for VM {vmid} on node '{node}'"
            continue
        if guest.lock:
            job.problem = f"{guest.label} is locked ({guest.lock})"
            continue
        ctime = started
        while f"{storage.storage}:backup/{backup_filename(guest.kind, vmid, ctime, extension)}" in taken:
            ctime += 1
        filename = backup_filename(guest.kind, vmid, ctime, extension)
        taken.add(f"{storage.storage}:backup/{filename}")
        notes = expand_notes(params["notes-template"], cluster, guest, node) if params.get("notes-template") else ""
        job.backup = Backup(storage.storage, filename, vmid, guest.kind, ctime,
                            estimated_size(guest, extension) if sized else 0, node,
                            config={key: value for key, value in guest.config.items() if key != "parent"},
                            notes=notes, protected=str(params.get("protected", "0")) == "1")
    return jobs


def run_jobs(cluster, jobs, storage, node, mode, extension, keep):
    """Make each job's backup (the guest backend writes the archive and sizes it), refuse one that does not fit,
    mark what a prune removes; the log lines of it all."""
    backend = cluster.guest_backend
    lines = []
    written = 0  # bytes this task wrote so far (not in the cluster's records yet)
    for job in jobs:
        lines += [f"INFO: Starting Backup of VM {job.vmid} ({job.guest.kind if job.guest else 'unknown'})",
                  f"INFO: Backup started at {time.strftime('%Y-%m-%d %H:%M:%S')}"]
        if job.problem is None:
            lines += job_intro(cluster, job, storage, mode)
            if backend is not None:
                try:
                    job.backup.path = backend.backup_path(storage.storage, job.backup.filename)
                    job.backup.size = backend.backup(job.guest, job.backup, mode)
                except Exception as exc:  # noqa: BLE001 - the guest's part fails with the backend's words
                    job.problem = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:300]
        if job.problem is None:
            with cluster.lock:
                free = storage.total - storage_used(cluster, storage, node) - written
            if job.backup.size > free:
                job.no_space = True
                if job.backup.path is not None:
                    backend.remove_backup(job.backup.path)
            else:
                written += job.backup.size
        lines += job_outcome(cluster, job, storage, extension, keep)
    return lines


def job_intro(cluster, job, storage, mode):
    """The log of a guest's backup up to writing the archive."""
    guest = job.guest
    lines = [f"INFO: status = {guest.status}", f"INFO: {guest.label} Name: {guest.name}"]
    if guest.kind == "lxc":
        lines.append("INFO: including mount point rootfs ('/') in backup")
    if mode == "snapshot" and guest.kind == "lxc" and unsnapshottable(cluster, guest):
        lines += ["INFO: mode failure - some volumes do not support snapshots", "INFO: trying 'suspend' mode instead"]
        mode = "suspend"
    if mode == "stop" and guest.status == "running":
        lines.append("INFO: stopping virtual guest")
    lines += [f"INFO: backup mode: {mode}",
              f"INFO: creating vzdump archive '{dump_dir(storage)}/{job.backup.filename}'"]
    if mode == "stop" and guest.status == "running":
        lines.append("INFO: restarting vm")
    return lines


def job_outcome(cluster, job, storage, extension, keep):
    """The log of how a guest's backup ended, and the prune after it (marked in job.pruned)."""
    if job.problem is not None:
        return [f"ERROR: Backup of VM {job.vmid} failed - {job.problem}", "INFO: Failed at "
                + time.strftime("%Y-%m-%d %H:%M:%S")]
    if job.no_space:
        if job.guest.kind == "qemu":
            reason = "job failed with err -28 - No space left on device"
            return [f"ERROR: Backup of VM {job.vmid} failed - {reason}"]
        message, code = NO_SPACE[extension]
        archive = f"{dump_dir(storage)}/{job.backup.filename.rsplit('.', 1)[0] if extension else job.backup.filename}"
        return [f"INFO: {message}",
                f"ERROR: Backup of VM {job.vmid} failed - command 'set -o pipefail && tar cpf - --totals "
                f"--one-file-system -p --sparse --numeric-owner --acls --xattrs --directory=/mnt/vzsnap0 ./ "
                f"| {'zstd --threads=1' if extension == 'zst' else extension or 'cat'} >{archive}.dat' "
                f"failed: exit code {code}"]
    lines = [f"INFO: archive file size: {human(job.backup.size)}"]
    if job.backup.notes:
        lines.append("INFO: adding notes to backup")
    if keep is not None:
        group = prune_group(cluster, storage, job.backup.node, job.backup.kind, job.vmid, extra=[job.backup])
        mark_backup_group(group, keep)
        job.pruned = [entry["volid"] for entry in group if entry["mark"] == "remove"]
        lines.append(f"INFO: prune older backups with retention: {format_retention(keep)}")
        lines += [f"INFO: removing backup '{volid}'" for volid in job.pruned]
        lines.append(f"INFO: pruned {len(job.pruned)} backup(s) not covered by keep-retention policy")
    lines.append(f"INFO: Finished Backup of VM {job.vmid} (00:00:01)")
    return lines


def remove_backup(cluster, backup):
    """Forget a backup and remove its file (if the guest backend wrote one)."""
    if backup is None:
        return
    cluster.backups.pop(backup.volid, None)
    if backup.path is not None and cluster.guest_backend is not None:
        cluster.guest_backend.remove_backup(backup.path)


# --- storage content ------------------------------------------------------------------------------

def backup_entry(backup):
    """A backup as the content list shows it."""
    entry = {"volid": backup.volid, "content": "backup", "format": backup.format, "size": backup.size,
             "ctime": backup.ctime, "vmid": backup.vmid, "subtype": backup.kind}
    if backup.notes:
        entry["notes"] = backup.notes.splitlines()[0]
    if backup.protected:
        entry["protected"] = 1
    return entry


def disk_entries(cluster, storage, node):
    """The guests' disks on a storage, as the content list shows them."""
    entries = []
    for guest in cluster.guests.values():
        if not storage.shared and guest.node != node:
            continue
        content = "rootdir" if guest.kind == "lxc" else "images"
        if not storage.holds(content):
            continue
        for key, size in guest.disks().items():
            volume = str(guest.config[key]).split(",")[0]
            volume = volume.split("=", 1)[1] if volume.startswith(("volume=", "file=")) else volume
            if volume.startswith(f"{storage.storage}:"):
                entries.append({"volid": volume, "content": content, "format": "raw", "size": size,
                                "vmid": guest.vmid})
    return entries


def list_content(cluster, request):
    """GET /nodes/{node}/storage/{storage}/content (content, vmid): backups and disks, sorted by volid."""
    node = cluster.online_node(request.path_values["node"]).name
    storage = require_storage(cluster, request.path_values["storage"], node)
    content = request.params.get("content")
    vmid = int(request.params["vmid"]) if "vmid" in request.params else None
    entries = []
    if storage.holds("backup") and content in (None, "backup"):
        entries += [backup_entry(backup) for backup in cluster.backups_on(storage, node)]
    if content in (None, "images", "rootdir"):
        entries += [entry for entry in disk_entries(cluster, storage, node) if content in (None, entry["content"])]
    if vmid is not None:
        entries = [entry for entry in entries if entry.get("vmid") == vmid]
    return sorted(entries, key=lambda entry: entry["volid"].lower())


def delete_volume(cluster, request):
    """DELETE /nodes/{node}/storage/{storage}/content/{volume} (delay): an imgdel task that removes a backup; with
    delay, null once it has ended well (500 with its error otherwise)."""
    node = cluster.online_node(request.path_values["node"]).name
    name = request.path_values["storage"]
    storage = require_storage(cluster, name, node)
    volume = request.path_values["volume"]
    if ":" in volume:
        owner, _, volname = volume.partition(":")
        if owner != name:
            raise parameter_error({"volume": f"storage ID mismatch ({owner} != {name})\n"})
    else:
        volname = volume
    volid = f"{name}:{volname}"
    if not volname.startswith("backup/"):
        raise ApiError(501, "the fake Proxmox deletes backup volumes only")
    found = BACKUP_NAME.match(volname[len("backup/"):])
    if not found:
        raise ApiError(500, f"unable to parse directory volume name '{volname}'")
    backup = next((b for b in cluster.backups_on(storage, node) if b.volid == volid), None)
    error = f"cannot remove protected volume '{volname}' on '{name}'" if backup and backup.protected else None

    def finish(task):
        """Remove the backup (a file already gone is no error, as unlink's ENOENT is none to the server)."""
        if task.succeeded:
            remove_backup(cluster, cluster.backups.get(volid))

    upid = cluster.start_task(node, "imgdel", f"{found.group(2)}@{name}", request.user, error=error,
                              log=[] if error else [f"Removed volume '{volid}'"], on_end=finish)
    if not request.params.get("delay"):
        return upid
    task = cluster.tasks[upid]
    task.duration = 0.0
    cluster.advance()
    if not task.succeeded:
        raise ApiError(500, task.exitstatus)
    return None


# --- prune ----------------------------------------------------------------------------------------

def prune_group(cluster, storage, node, kind, vmid, extra=()):
    """Prune entries ({volid, ctime, type, vmid, mark?}) of one guest's backups on a storage."""
    return [entry for entry in prune_entries(cluster, storage, node, vmid, kind, extra)
            if entry.get("mark") != "renamed"]


def prune_entries(cluster, storage, node, vmid=None, kind=None, extra=()):
    """What a prune looks at, as PVE::Storage::Plugin::prune_backups lists it (protected and renamed marked)."""
    entries = []
    for backup in [*cluster.backups_on(storage, node), *extra]:
        if (vmid is not None and backup.vmid != vmid) or (kind is not None and backup.kind != kind):
            continue
        entry = {"volid": backup.volid, "ctime": backup.ctime, "type": backup.kind, "vmid": backup.vmid}
        if backup.protected:
            entry["mark"] = "protected"
        if not BACKUP_NAME.match(backup.filename):
            entry["mark"] = "renamed"
        entries.append(entry)
    return entries


def marked_entries(cluster, storage, node, params):
    """The prune list with every entry marked keep, remove, protected or renamed; raise the server's refusals
    (storage without backups, no retention) as ApiError."""
    if not storage.holds("backup"):
        raise ApiError(500, f"storage '{storage.storage}' does not support backups")
    text = params.get("prune-backups") or storage.prune_backups
    if text is None:
        raise ApiError(500, f"no prune-backups options configured for storage '{storage.storage}'")
    keep = parse_retention(text)
    vmid = int(params["vmid"]) if "vmid" in params else None
    entries = prune_entries(cluster, storage, node, vmid, params.get("type"))
    groups = {}
    for entry in entries:
        if entry.get("mark") != "renamed":
            groups.setdefault((entry["type"], entry["vmid"]), []).append(entry)
    for group in groups.values():
        mark_backup_group(group, keep)
    return entries


def checked_retention(params):
    """Refuse a prune-backups value the server's format validator refuses (400)."""
    try:
        parse_retention(params.get("prune-backups"))
    except RetentionError as exc:
        raise parameter_error({"prune-backups": f"invalid format - {exc}\n"}) from None


def prune_dry_run(cluster, request):
    """GET /nodes/{node}/storage/{storage}/prunebackups (prune-backups, type, vmid): what a prune would do."""
    node = cluster.online_node(request.path_values["node"]).name
    checked_retention(request.params)
    storage = require_storage(cluster, request.path_values["storage"], node)
    return marked_entries(cluster, storage, node, request.params)


def prune(cluster, request):
    """DELETE /nodes/{node}/storage/{storage}/prunebackups: a prunebackups task that removes what the retention
    does not keep."""
    node = cluster.online_node(request.path_values["node"]).name
    checked_retention(request.params)
    name = request.path_values["storage"]
    task_id = f"{request.params['vmid']}@{name}" if "vmid" in request.params else name
    storage = cluster.storage_on(name, node)
    try:
        if storage is None:
            raise ApiError(500, f"storage '{name}' does not exist")
        entries = marked_entries(cluster, storage, node, request.params)
    except ApiError as exc:
        return cluster.start_task(node, "prunebackups", task_id, request.user, error=exc.reason)
    doomed = [entry["volid"] for entry in entries if entry["mark"] == "remove"]

    def finish(task):
        """Remove the backups marked for removal."""
        if task.succeeded:
            for volid in doomed:
                remove_backup(cluster, cluster.backups.get(volid))

    return cluster.start_task(node, "prunebackups", task_id, request.user,
                              log=[f"removing backup '{volid}'" for volid in doomed], on_end=finish)
