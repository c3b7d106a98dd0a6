"""The fake Proxmox's snapshots, rollbacks, vzdump backups, storage content, prunes and restores, driven by the real
proxmoxer client over HTTPS and checked against the schema like every request."""
import datetime
import re
import time
from urllib.parse import quote

import pytest
import requests
from proxmoxer import ProxmoxAPI, ResourceException

from backend.simulation.fake_proxmox import GIB, FakeProxmox, Node, Storage, default_storages, parse_retention
from backend.simulation.pve_schema import validate

TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
NET0 = "name=eth0,bridge=vmbr0,ip=dhcp"
VOLID = re.compile(r"^backup:backup/vzdump-(lxc|qemu)-(\d+)-(\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2})\.(tar|vma)"
                   r"(\.zst|\.gz|\.lzo)?$")


# --- fixtures and helpers ------------------------------------------------------------------------

def connect(fake, **kwargs):
    options = {"user": "root@pam", "token_name": "paas", "token_value": "secret", "timeout": 5}
    options.update(kwargs)
    return ProxmoxAPI(fake.host, port=fake.port, verify_ssl=fake.ca_bundle_path, **options)


@pytest.fixture
def api(fake):
    """A client with the API token root@pam!paas."""
    return connect(fake)


@pytest.fixture
def slow_storage_fake():
    """Two nodes with the default storages and slow-lvm, a thick LVM (no snapshots), and images on local (dir)."""
    storages = [*default_storages(), Storage("slow-lvm", type="lvm", content="images,rootdir", total=512 * GIB)]
    storages[0].content += ",images"
    with FakeProxmox(nodes=[Node("pve1"), Node("pve2")], storages=storages, task_seconds=0.02) as server:
        server.add_template(9000, node="pve1")
        yield server


def wait_for_task(api, node, upid, timeout=5.0):
    """Poll a task until it stops; return its status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = api.nodes(node).tasks(upid).status.get()
        if status["status"] == "stopped":
            return status
        time.sleep(0.01)
    raise AssertionError(f"task {upid} still running after {timeout}s")


def log_of(api, node, upid):
    return [line["t"] for line in api.nodes(node).tasks(upid).log.get(limit=500)]


def create_container(api, vmid, node="pve1", **extra):
    params = {"vmid": vmid, "ostemplate": TEMPLATE, "hostname": f"app-{vmid}", "cores": 1, "memory": 512,
              "rootfs": "local-lvm:8", "net0": NET0, "tags": "paas"}
    params.update(extra)
    status = wait_for_task(api, node, api.nodes(node).lxc.post(**params))
    assert status["exitstatus"] == "OK", status
    return api.nodes(node).lxc(vmid)


def clone_vm(api, newid, **extra):
    assert wait_for_task(api, "pve1", api.nodes("pve1").qemu(9000).clone.post(newid=newid, full=1, **extra))[
        "exitstatus"] == "OK"
    return api.nodes("pve1").qemu(newid)


def run(api, node, upid):
    """Wait for a task; its exit status."""
    return wait_for_task(api, node, upid)["exitstatus"]


def backup(api, vmid, node="pve1", **extra):
    """Back a guest up to the shared storage; (exit status, upid)."""
    params = {"vmid": str(vmid), "storage": "backup", "compress": "zstd", "mode": "snapshot", "remove": 0}
    params.update(extra)
    upid = api.nodes(node).vzdump.post(**params)
    return run(api, node, upid), upid


def backups_of(api, vmid, node="pve1", storage="backup"):
    return api.nodes(node).storage(storage).content.get(content="backup", vmid=vmid)


def local(*parts):
    """A ctime in local time (the server's localtime decides days and weeks)."""
    return int(datetime.datetime(*parts).timestamp())


# --- the schema --------------------------------------------------------------------------------

def test_the_new_endpoints_take_exactly_the_parameters_the_schema_gives():
    assert validate("POST", "/nodes/pve1/lxc/101/snapshot", {"snapname": "before-deploy", "description": "x"}) == []
    assert validate("POST", "/nodes/pve1/qemu/101/snapshot", {"snapname": "s1", "vmstate": "1"}) == []
    assert validate("POST", "/nodes/pve1/lxc/101/snapshot", {"snapname": "s1", "vmstate": "1"}) == [
        "vmstate: property is not defined in schema and the schema does not allow additional properties"]
    assert validate("POST", "/nodes/pve1/lxc/101/snapshot", {"snapname": "1st"}) == [
        "snapname: invalid format - invalid configuration ID '1st'"]
    assert validate("POST", "/nodes/pve1/lxc/101/snapshot/s1/rollback", {"start": "1"}) == []
    assert validate("POST", "/nodes/pve1/vzdump", {"vmid": "101,102", "compress": "zstd", "storage": "backup",
                                                   "notes-template": "{{guestname}}", "remove": "0"}) == []
    assert validate("POST", "/nodes/pve1/vzdump", {"vmid": "101", "compress": "xz"})[0].startswith("compress:")
    assert validate("POST", "/nodes/pve1/vzdump", {"vmid": "101", "notes-template": "x"}) == [
        "storage: missing property - 'notes-template' requires this property"]
    assert validate("DELETE", "/nodes/pve1/storage/backup/prunebackups",
                    {"prune-backups": "keep-last=2,keep-daily=3", "type": "lxc", "vmid": "101"}) == []
    assert validate("DELETE", "/nodes/pve1/storage/backup/prunebackups", {"prune-backups": "keep-every=2"}) == [
        "prune-backups: invalid format - invalid key in comma-separated list property: keep-every"]
    assert validate("POST", "/nodes/pve1/storage/backup/prunebackups", {})[0].startswith("_path: no POST")
    assert validate("POST", "/nodes/pve1/qemu", {"vmid": "150", "archive": "backup:backup/x.vma.zst",
                                                 "storage": "local-lvm", "unique": "1"}) == []


def test_an_unknown_parameter_is_refused_with_400_and_recorded(fake, api):
    create_container(api, 101)
    with pytest.raises(ResourceException) as caught:
        api.nodes("pve1").vzdump.post(vmid="101", storage="backup", colour="blue")
    assert caught.value.status_code == 400 and set(caught.value.errors) == {"colour"}
    with pytest.raises(ResourceException) as caught:
        api.nodes("pve1").lxc(101).snapshot.post(snapname="s1", vmstate=1)
    assert caught.value.status_code == 400 and set(caught.value.errors) == {"vmstate"}
    assert [set(violation.errors) for violation in fake.schema_violations] == [{"colour"}, {"vmstate"}]
    assert fake.backups == {} and backups_of(api, 101) == []


def test_storage_capability_follows_its_type():
    assert [Storage("s", type=t).snapshots for t in ("lvmthin", "zfspool", "rbd", "btrfs", "lvm", "dir", "nfs")] == \
        [True, True, True, True, False, False, False]
    assert Storage("s", type="dir").can_snapshot("101/vm-101-disk-0.qcow2")
    assert not Storage("s", type="dir").can_snapshot("101/vm-101-disk-0.raw")
    shared = next(s for s in default_storages() if s.storage == "backup")
    assert (shared.type, shared.content, shared.shared) == ("nfs", "backup", True)


# --- snapshots ---------------------------------------------------------------------------------

def test_snapshots_are_listed_oldest_first_with_their_parents_and_current_last(fake, api):
    ct = create_container(api, 101)
    assert ct.snapshot.get() == [{"name": "current", "description": "You are here!", "running": 0,
                                  "digest": ct.config.get()["digest"]}]
    upid = ct.snapshot.post(snapname="first", description="before the deploy")
    assert upid.split(":")[5:7] == ["vzsnapshot", "101"] and run(api, "pve1", upid) == "OK"
    assert run(api, "pve1", ct.snapshot.post(snapname="second")) == "OK"
    first, second, current = ct.snapshot.get()
    assert (first["name"], first["description"], "parent" in first) == ("first", "before the deploy", False)
    assert (second["name"], second["description"], second["parent"]) == ("second", "", "first")
    assert abs(second["snaptime"] - time.time()) < 5
    assert current == {"name": "current", "description": "You are here!", "parent": "second", "running": 0,
                       "digest": ct.config.get()["digest"]}
    assert ct.config.get()["parent"] == "second"
    vm = clone_vm(api, 120)
    run(api, "pve1", vm.status.start.post())
    assert run(api, "pve1", vm.snapshot.post(snapname="ram", vmstate=1)) == "OK"
    assert [(s["name"], s.get("vmstate")) for s in vm.snapshot.get()] == [("ram", 1), ("current", None)]
    fake.assert_no_violations()


def test_a_used_name_fails_the_task_and_current_is_refused_at_once(api):
    ct = create_container(api, 101)
    run(api, "pve1", ct.snapshot.post(snapname="first"))
    assert run(api, "pve1", ct.snapshot.post(snapname="first")) == "snapshot name 'first' already used"
    with pytest.raises(ResourceException) as caught:
        ct.snapshot.post(snapname="current")
    assert (caught.value.status_code, caught.value.content) == (500, "unable to use snapshot name 'current' "
                                                                     "(reserved name)")
    assert run(api, "pve1", api.nodes("pve1").qemu(9000).snapshot.post(snapname="tpl")) == \
        "you can't take a snapshot if it's a template"
    assert [s["name"] for s in ct.snapshot.get()] == ["first", "current"]


def test_a_guest_on_a_storage_that_cannot_snapshot_fails_naming_the_volume(slow_storage_fake):
    api = connect(slow_storage_fake)
    ct = create_container(api, 101, rootfs="slow-lvm:8")
    status = wait_for_task(api, "pve1", ct.snapshot.post(snapname="first"))
    assert status["exitstatus"] == "snapshot feature for rootfs 'slow-lvm:vm-101-disk-0' is not available"
    assert log_of(api, "pve1", status["upid"])[-1] == (
        "TASK ERROR: snapshot feature for rootfs 'slow-lvm:vm-101-disk-0' is not available")
    assert "lock" not in ct.status.current.get() and [s["name"] for s in ct.snapshot.get()] == ["current"]
    vm = clone_vm(api, 120, storage="local")
    vm.config.put(scsi1="slow-lvm:4")
    assert run(api, "pve1", vm.snapshot.post(snapname="first")) == (
        "snapshot feature for scsi0 'local:vm-120-disk-0' is not available")
    ok = create_container(api, 102, mp0="local-lvm:2,mp=/srv")
    assert run(api, "pve1", ok.snapshot.post(snapname="first")) == "OK"
    ok.config.put(mp1="slow-lvm:2,mp=/data")
    volume = ok.config.get()["mp1"].split(",")[0]
    assert volume.startswith("slow-lvm:vm-102-disk-")
    assert run(api, "pve1", ok.snapshot.post(snapname="second")) == (
        f"snapshot feature for mp1 '{volume}' is not available")
    slow_storage_fake.assert_no_violations()


def test_a_rollback_restores_the_config_and_leaves_the_guest_stopped_unless_started(fake, api):
    ct = create_container(api, 101, cores=1)
    run(api, "pve1", ct.status.start.post())
    run(api, "pve1", ct.snapshot.post(snapname="one-core"))
    ct.config.put(cores=4, description="notes stay")
    upid = ct.snapshot("one-core").rollback.post()
    assert upid.split(":")[5] == "vzrollback" and run(api, "pve1", upid) == "OK"
    config = ct.config.get()
    assert (config["cores"], config["description"], config["parent"]) == (1, "notes stay", "one-core")
    assert ct.status.current.get()["status"] == "stopped"
    assert run(api, "pve1", ct.snapshot("one-core").rollback.post(start=1)) == "OK"
    assert ct.status.current.get()["status"] == "running"
    assert run(api, "pve1", ct.snapshot("nope").rollback.post()) == "snapshot 'nope' does not exist"

    vm = clone_vm(api, 120)
    run(api, "pve1", vm.status.start.post())
    run(api, "pve1", vm.snapshot.post(snapname="disk-only"))
    run(api, "pve1", vm.snapshot.post(snapname="with-ram", vmstate=1))
    assert run(api, "pve1", vm.snapshot("disk-only").rollback.post()) == "OK"
    assert vm.status.current.get()["status"] == "stopped"
    assert run(api, "pve1", vm.snapshot("with-ram").rollback.post()) == "OK"
    assert vm.status.current.get()["status"] == "running"  # a snapshot with RAM resumes the VM
    fake.assert_no_violations()


def test_zfs_rolls_back_to_the_latest_snapshot_only():
    storages = [Storage("tank", type="zfspool", content="images,rootdir")]
    with FakeProxmox(storages=storages, task_seconds=0.02) as fake:
        api = connect(fake)
        ct = create_container(api, 101, rootfs="tank:8")
        for name in ("older", "newer"):
            run(api, "pve1", ct.snapshot.post(snapname=name))
        assert run(api, "pve1", ct.snapshot("older").rollback.post()) == (
            "can't rollback, 'older' is not most recent snapshot on 'vm-101-disk-0'")
        assert run(api, "pve1", ct.snapshot("newer").rollback.post()) == "OK"


def test_deleting_a_snapshot_gives_its_children_its_parent(api):
    ct = create_container(api, 101)
    for name in ("s1", "s2", "s3"):
        run(api, "pve1", ct.snapshot.post(snapname=name))
    upid = ct.snapshot("s2").delete()
    assert upid.split(":")[5] == "vzdelsnapshot" and run(api, "pve1", upid) == "OK"
    assert [(s["name"], s.get("parent")) for s in ct.snapshot.get()] == [("s1", None), ("s3", "s1"),
                                                                          ("current", "s3")]
    run(api, "pve1", ct.snapshot("s3").delete())
    assert ct.config.get()["parent"] == "s1"
    run(api, "pve1", ct.snapshot("s1").delete())
    assert "parent" not in ct.config.get()
    assert run(api, "pve1", ct.snapshot("s1").delete()) == "snapshot 's1' does not exist"


def test_a_guest_is_locked_while_a_snapshot_runs_and_others_meet_the_lock(fake, api):
    ct = create_container(api, 101)
    vm = clone_vm(api, 120)
    fake.task_durations.update({"vzsnapshot": 1.0, "qmsnapshot": 1.0})
    upid = ct.snapshot.post(snapname="slow")
    vm_upid = vm.snapshot.post(snapname="slow")
    vm_rollback = vm.snapshot("slow").rollback.post()  # the snapshot is not there until its task has ended
    other = ct.snapshot.post(snapname="other")
    assert ct.status.current.get()["lock"] == "snapshot" and ct.config.get()["lock"] == "snapshot"
    with pytest.raises(ResourceException, match=r"CT is locked \(snapshot\)"):
        ct.config.put(cores=2)
    status, dump = backup(api, 101)
    assert status == "job errors"
    assert "ERROR: Backup of VM 101 failed - CT is locked (snapshot)" in log_of(api, "pve1", dump)
    assert run(api, "pve1", ct.status.start.post()) == "CT is locked (snapshot)"
    assert run(api, "pve1", vm_rollback) == "snapshot 'slow' does not exist"
    assert run(api, "pve1", other) == "CT is locked (snapshot)"
    assert run(api, "pve1", upid) == "OK" and run(api, "pve1", vm_upid) == "OK"
    assert "lock" not in ct.status.current.get() and "lock" not in vm.config.get()
    fake.task_durations["vzrollback"] = 1.0
    rollback = ct.snapshot("slow").rollback.post()
    assert ct.status.current.get()["lock"] == "rollback"
    assert run(api, "pve1", ct.snapshot("slow").delete()) == "CT is locked (rollback)"
    assert run(api, "pve1", rollback) == "OK"


def test_a_contended_config_lock_fails_the_snapshot_task(fake, api):
    create_container(api, 101)
    vm = clone_vm(api, 120)
    fake.lock_timeouts = 1
    assert run(api, "pve1", vm.snapshot.post(snapname="first")) == (
        "can't lock file '/var/lock/qemu-server/lock-120.conf' - got timeout")
    assert run(api, "pve1", vm.snapshot.post(snapname="first")) == "OK"


def test_destroying_a_guest_removes_its_snapshots_but_not_its_backups(fake, api):
    ct = create_container(api, 101)
    run(api, "pve1", ct.snapshot.post(snapname="s1"))
    backup(api, 101)
    run(api, "pve1", ct.delete())
    create_container(api, 101)
    assert [s["name"] for s in ct.snapshot.get()] == ["current"]
    assert len(backups_of(api, 101)) == 1


# --- vzdump ------------------------------------------------------------------------------------

@pytest.mark.parametrize("compress, suffix", [("zstd", ".tar.zst"), ("gzip", ".tar.gz"), ("lzo", ".tar.lzo"),
                                              ("1", ".tar.lzo"), ("0", ".tar")])
def test_a_backup_is_named_by_kind_vmid_time_and_compression(api, compress, suffix):
    create_container(api, 101)
    before = int(time.time())
    status, upid = backup(api, 101, compress=compress)
    assert status == "OK" and upid.split(":")[5:7] == ["vzdump", "101"]
    [entry] = backups_of(api, 101)
    found = VOLID.match(entry["volid"])
    assert found and found.group(1, 2) == ("lxc", "101") and entry["volid"].endswith(suffix)
    assert time.strftime("%Y_%m_%d-%H_%M_%S", time.localtime(entry["ctime"])) == found.group(3)
    assert before <= entry["ctime"] <= time.time() + 1
    assert (entry["content"], entry["format"], entry["subtype"], entry["vmid"]) == (
        "backup", suffix[1:], "lxc", 101)


def test_a_backup_lists_its_notes_and_the_log_tells_the_story(fake, api):
    create_container(api, 101)
    vm = clone_vm(api, 120)
    status, upid = backup(api, 101, **{"notes-template": "{{guestname}} on {{node}} ({{vmid}}, {{cluster}})"})
    assert status == "OK"
    [entry] = backups_of(api, 101)
    assert entry["notes"] == "app-101 on pve1 (101, fake-cluster)" and 100 * 1024 ** 2 < entry["size"] < 8 * GIB
    log = log_of(api, "pve1", upid)
    assert log[0].startswith("INFO: starting new backup job: vzdump 101 ")
    assert f"INFO: creating vzdump archive '/mnt/pve/backup/dump/{entry['volid'].split('/')[1]}'" in log
    assert log[-2:] == ["INFO: Backup job finished successfully", "TASK OK"]
    assert backup(api, 120, compress="gzip")[0] == "OK"
    [vm_backup] = backups_of(api, 120)
    assert vm_backup["volid"].endswith(".vma.gz") and vm_backup["subtype"] == "qemu"
    storage = api.nodes("pve2").storage.get(storage="backup")[0]
    assert storage["used"] == entry["size"] + vm_backup["size"] and storage["shared"] == 1
    assert vm.status.current.get()["status"] == "stopped"
    fake.assert_no_violations()


def test_backups_within_one_second_get_names_a_second_apart(api):
    create_container(api, 101)
    assert [backup(api, 101)[0] for _ in range(3)] == ["OK", "OK", "OK"]
    first, second, third = backups_of(api, 101)
    assert third["ctime"] - second["ctime"] >= 1
    assert second["ctime"] - first["ctime"] >= 1 and first["volid"] != second["volid"]


def test_a_guest_carries_the_backup_lock_while_its_backup_runs(fake, api):
    ct = create_container(api, 101)
    fake.task_durations["vzdump"] = 0.5
    upid = api.nodes("pve1").vzdump.post(vmid="101", storage="backup")
    assert ct.status.current.get()["lock"] == "backup"
    assert run(api, "pve1", ct.snapshot.post(snapname="during")) == "CT is locked (backup)"
    with pytest.raises(ResourceException, match=r"CT is locked \(backup\)"):
        ct.config.put(memory=1024)
    assert run(api, "pve1", upid) == "OK" and "lock" not in ct.status.current.get()


def test_vzdump_refusals_before_the_task(fake, api):
    create_container(api, 101)
    for params, errors in [
        ({"vmid": "101", "storage": "backup", "prune-backups": "keep-last=1"}, {"prune-backups"}),
        ({"vmid": "101", "storage": "backup", "bwlimit": 100}, {"bwlimit"}),
        ({"vmid": "101", "all": 1}, {"all"}),
        ({"storage": "backup"}, {"vmid"}),
    ]:
        with pytest.raises(ResourceException) as caught:
            api.nodes("pve1").vzdump.post(**params)
        assert caught.value.status_code == 400 and set(caught.value.errors) == errors
    with pytest.raises(ResourceException) as caught:
        api.nodes("pve1").vzdump.post(vmid="101", storage="backup", bwlimit=100)
    assert caught.value.errors == {"bwlimit": "Only root may set this option."}  # a token is not root@pam
    assert fake.schema_violations == []  # these are the server's own refusals, not the schema's


def test_vzdump_of_a_guest_on_another_node_answers_ok_and_does_nothing(api):
    create_container(api, 101)
    assert api.nodes("pve2").vzdump.post(vmid="101", storage="backup") == "OK"
    assert backups_of(api, 101) == []


@pytest.mark.parametrize("storage, error", [
    ("nowhere", "could not get storage information for 'nowhere': storage 'nowhere' does not exist"),
    ("local-lvm", "could not get storage information for 'local-lvm': can't use storage 'local-lvm' for backups - "
                  "wrong content type"),
])
def test_a_storage_that_is_not_there_or_holds_no_backups_fails_the_task(api, storage, error):
    create_container(api, 101)
    assert backup(api, 101, storage=storage)[0] == error


def test_an_unknown_guest_fails_its_part_and_the_job_ends_with_errors(api):
    create_container(api, 101)
    upid = api.nodes("pve1").vzdump.post(vmid="101,555", storage="backup")
    assert upid.split(":")[6] == "" and run(api, "pve1", upid) == "job errors"
    assert "ERROR: Backup of VM 555 failed - unable to find configuration file for VM 555 on node 'pve1'" in \
        log_of(api, "pve1", upid)
    assert len(backups_of(api, 101)) == 1  # the other guest's backup was made


def test_a_full_storage_fails_the_backup_with_no_space_left_on_device(fake, api):
    create_container(api, 101)
    vm = clone_vm(api, 120)
    fake.storage("backup").total = 100 * 1024 ** 2
    status, upid = backup(api, 101)
    log = log_of(api, "pve1", upid)
    assert status == "job errors" and log[-1] == "TASK ERROR: job errors"
    assert "INFO: zstd: error 70 : Write error : cannot write block : No space left on device" in log
    assert any(line.startswith("ERROR: Backup of VM 101 failed - command ") for line in log)
    status, upid = backup(api, 120)
    assert "ERROR: Backup of VM 120 failed - job failed with err -28 - No space left on device" in \
        log_of(api, "pve1", upid)
    assert fake.backups == {} and "lock" not in vm.config.get()
    fake.storage("backup").total = 2048 * GIB
    assert backup(api, 101)[0] == "OK"


def test_an_injected_vzdump_failure_makes_no_backup_and_unlocks(fake, api):
    ct = create_container(api, 101)
    fake.fail_task("vzdump", "interrupted by signal")
    assert backup(api, 101)[0] == "interrupted by signal"
    assert backups_of(api, 101) == [] and "lock" not in ct.status.current.get()
    assert backup(api, 101)[0] == "OK"


def test_vzdump_prunes_the_guests_backups_afterwards_by_retention(fake):
    root = connect(fake, token_name=None, token_value=None, password="password")  # root@pam may choose one
    create_container(root, 101)
    for day in (1, 2, 3):
        fake.add_backup(101, ctime=local(2025, 1, day, 12))
    fake.add_backup(102, ctime=local(2025, 1, 1, 12))
    status, upid = backup(root, 101, remove=1, **{"prune-backups": "keep-last=2"})
    assert status == "OK"
    kept = [entry["ctime"] for entry in backups_of(root, 101)]
    assert len(kept) == 2 and kept[0] == local(2025, 1, 3, 12) and kept[1] > time.time() - 60
    assert "INFO: prune older backups with retention: keep-last=2" in log_of(root, "pve1", upid)
    assert len(backups_of(root, 102)) == 1
    fake.storage("backup").prune_backups = "keep-last=1"  # the storage's own retention, when the job names none
    assert backup(root, 101, remove=1)[0] == "OK" and len(backups_of(root, 101)) == 1
    fake.assert_no_violations()


# --- storage content ---------------------------------------------------------------------------

def test_content_lists_backups_and_disks_filtered_by_type_and_guest(fake, api):
    create_container(api, 101)
    clone_vm(api, 120)
    backup(api, 101)
    backup(api, 120)
    assert [e["vmid"] for e in api.nodes("pve1").storage("backup").content.get()] == [101, 120]
    disks = api.nodes("pve1").storage("local-lvm").content.get()
    assert {(e["volid"], e["content"]) for e in disks} >= {("local-lvm:vm-101-disk-0", "rootdir"),
                                                          ("local-lvm:vm-120-disk-0", "images")}
    assert [e["volid"] for e in api.nodes("pve1").storage("local-lvm").content.get(content="rootdir")] == [
        "local-lvm:vm-101-disk-0"]
    assert api.nodes("pve2").storage("local-lvm").content.get() == []  # not shared: pve2 has its own
    assert api.nodes("pve2").storage("backup").content.get(vmid=120)[0]["subtype"] == "qemu"
    with pytest.raises(ResourceException) as caught:
        api.nodes("pve1").storage("nowhere").content.get()
    assert (caught.value.status_code, caught.value.content) == (500, "storage 'nowhere' does not exist")


def test_deleting_a_backup_is_an_imgdel_task_or_null_with_delay(fake, api):
    create_container(api, 101)
    backup(api, 101)
    backup(api, 101)
    first, second = (entry["volid"] for entry in backups_of(api, 101))
    upid = api.nodes("pve2").storage("backup").content(quote(first, safe="")).delete()
    assert upid.split(":")[5:7] == ["imgdel", "101@backup"] and run(api, "pve2", upid) == "OK"
    assert log_of(api, "pve2", upid)[0] == f"Removed volume '{first}'"
    volname = second.split(":", 1)[1]
    assert api.nodes("pve1").storage("backup").content(quote(volname, safe="")).delete(delay=5) is None
    assert backups_of(api, 101) == []
    with pytest.raises(ResourceException) as caught:
        api.nodes("pve1").storage("local").content(quote(second, safe="")).delete()
    assert caught.value.status_code == 400 and caught.value.errors == {
        "volume": "storage ID mismatch (backup != local)\n"}
    protected = fake.add_backup(101, protected=True)
    name = protected.volid.split(":", 1)[1]
    assert run(api, "pve1", api.nodes("pve1").storage("backup").content(quote(protected.volid, safe="")).delete()) \
        == f"cannot remove protected volume '{name}' on 'backup'"
    with pytest.raises(ResourceException) as caught:
        api.nodes("pve1").storage("backup").content(quote(protected.volid, safe="")).delete(delay=1)
    assert caught.value.status_code == 500 and backups_of(api, 101)[0]["protected"] == 1


# --- prune -------------------------------------------------------------------------------------

PRUNE_TABLE = {  # name: local time; newest first. ISO weeks: 17 Mar is in week 12, 10-16 Mar in 11, 3-9 Mar in 10
    "A": (2025, 3, 17, 22), "B": (2025, 3, 17, 10), "C": (2025, 3, 17, 8),   # Monday, week 12
    "D": (2025, 3, 16, 23), "E": (2025, 3, 16, 12), "F": (2025, 3, 15, 20),  # Sunday, Saturday, week 11
    "G": (2025, 3, 14, 20), "H": (2025, 3, 12, 20),                         # Friday, Wednesday, week 11
    "I": (2025, 3, 9, 20), "J": (2025, 3, 5, 20),                           # week 10
    "K": (2025, 3, 2, 20), "L": (2025, 2, 23, 20),                          # weeks 9 and 8
}
# keep-last=2: A, B. keep-daily=3 (days not kept yet): 16 Mar (D; E removed), 15 Mar (F), 14 Mar (G); C's day is
# kept already, so C is passed over. keep-weekly=2 (weeks 12 and 11 are kept): week 10 (I; J removed), week 9 (K).
# The rest (C, H, L) is removed.
PRUNE_KEPT = {"A", "B", "D", "F", "G", "I", "K"}


def seed_prune_table(fake, vmid=101):
    return {fake.add_backup(vmid, ctime=local(*when)).volid: name for name, when in PRUNE_TABLE.items()}


def test_prune_keeps_what_proxmox_keeps_for_last_daily_and_weekly(fake, api):
    names = seed_prune_table(fake)
    other = fake.add_backup(102, ctime=local(2025, 1, 1, 12)).volid
    vm = fake.add_backup(101, kind="qemu", ctime=local(2020, 1, 1, 12)).volid  # another group: qemu/101
    entries = api.nodes("pve1").storage("backup").prunebackups.get(
        **{"prune-backups": "keep-last=2,keep-daily=3,keep-weekly=2"})
    marks = {entry["volid"]: entry["mark"] for entry in entries}
    assert {names[v] for v, mark in marks.items() if v in names and mark == "keep"} == PRUNE_KEPT
    assert {names[v] for v, mark in marks.items() if v in names and mark == "remove"} == {"C", "E", "H", "J", "L"}
    assert marks[other] == "keep" and marks[vm] == "keep"  # the newest of their own groups
    assert set(entries[0]) == {"volid", "ctime", "mark", "type", "vmid"}

    upid = api.nodes("pve1").storage("backup").prunebackups.delete(
        **{"prune-backups": "keep-last=2,keep-daily=3,keep-weekly=2", "type": "lxc", "vmid": 101})
    assert upid.split(":")[5:7] == ["prunebackups", "101@backup"] and run(api, "pve1", upid) == "OK"
    left = {entry["volid"] for entry in api.nodes("pve1").storage("backup").content.get()}
    assert {names[v] for v in left if v in names} == PRUNE_KEPT and {other, vm} <= left
    assert sum(line["t"].startswith("removing backup '") for line in
               api.nodes("pve1").tasks(upid).log.get()) == 5
    fake.assert_no_violations()


def test_prune_leaves_protected_backups_and_keep_all_keeps_everything(fake, api):
    names = seed_prune_table(fake)
    guarded = fake.add_backup(101, ctime=local(2024, 6, 1, 12), protected=True).volid
    renamed = fake.add_backup(101, ctime=local(2024, 6, 1, 12), filename="before-the-move.tar.zst").volid
    marks = {e["volid"]: e["mark"] for e in api.nodes("pve1").storage("backup").prunebackups.get(
        **{"prune-backups": "keep-last=1"})}
    assert marks[guarded] == "protected" and sum(mark == "keep" for mark in marks.values()) == 1
    assert marks[renamed] == "renamed"
    run(api, "pve1", api.nodes("pve1").storage("backup").prunebackups.delete(**{"prune-backups": "keep-last=1"}))
    assert {e["volid"] for e in backups_of(api, 101)} == {guarded, renamed, min(names, key=names.get)}
    everything = api.nodes("pve1").storage("backup").prunebackups.get(**{"prune-backups": "keep-all=1"})
    assert {e["mark"] for e in everything if e["volid"] in names} == {"keep"}
    assert parse_retention("keep-all=0,keep-last=0") == {"keep-all": 1}


def test_prune_refusals(fake, api):
    with pytest.raises(ResourceException) as caught:
        api.nodes("pve1").storage("backup").prunebackups.get(**{"prune-backups": "keep-all=1,keep-last=2"})
    assert caught.value.errors == {"prune-backups": "invalid format - keep-all cannot be set together with other "
                                                    "options.\n"}
    with pytest.raises(ResourceException, match="no prune-backups options configured for storage 'backup'"):
        api.nodes("pve1").storage("backup").prunebackups.get()
    with pytest.raises(ResourceException, match="storage 'local-lvm' does not support backups"):
        api.nodes("pve1").storage("local-lvm").prunebackups.get(**{"prune-backups": "keep-last=1"})
    upid = api.nodes("pve1").storage("local-lvm").prunebackups.delete(**{"prune-backups": "keep-last=1"})
    assert run(api, "pve1", upid) == "storage 'local-lvm' does not support backups"


# --- restore -----------------------------------------------------------------------------------

def test_a_container_backup_restores_on_the_other_node_with_overrides(fake, api):
    fake.task_durations["vzrestore"] = 0.3
    ct = create_container(api, 101, cores=2, memory=1024, rootfs="local-lvm:12")
    ct.config.put(description="the shop")
    run(api, "pve1", ct.snapshot.post(snapname="s1"))
    backup(api, 101)
    [entry] = backups_of(api, 101, node="pve2")
    upid = api.nodes("pve2").lxc.post(vmid=150, ostemplate=entry["volid"], restore=1, storage="local-lvm",
                                      unique=1, hostname="shop-copy", memory=2048,
                                      net0="name=eth0,bridge=vmbr0,ip=10.20.0.5/24,gw=10.20.0.1")
    assert upid.split(":")[1] == "pve2" and upid.split(":")[5:7] == ["vzrestore", "150"]
    assert api.nodes("pve2").lxc(150).status.current.get()["lock"] == "create"
    assert run(api, "pve2", upid) == "OK"
    restored = api.nodes("pve2").lxc(150).config.get()
    original = ct.config.get()
    assert (restored["hostname"], restored["memory"], restored["cores"], restored["description"]) == (
        "shop-copy", 2048, 2, "the shop")
    assert restored["rootfs"] == "local-lvm:vm-150-disk-0,size=12G" and "parent" not in restored
    assert "ip=10.20.0.5/24" in restored["net0"] and "hwaddr=BC:24:11:" in restored["net0"]
    assert restored["net0"].split("hwaddr=")[1][:17] != original["net0"].split("hwaddr=")[1][:17]
    assert api.nodes("pve2").lxc(150).status.current.get()["status"] == "stopped"
    assert [s["name"] for s in api.nodes("pve2").lxc(150).snapshot.get()] == ["current"]
    assert run(api, "pve2", api.nodes("pve2").lxc.post(vmid=151, ostemplate=entry["volid"], restore=1,
                                                       storage="local-lvm", start=1)) == "OK"
    assert api.nodes("pve2").lxc(151).status.current.get()["status"] == "running"
    fake.assert_no_violations()


def test_a_vm_backup_restores_with_its_disks_and_overrides(fake, api):
    vm = clone_vm(api, 120)
    vm.config.put(cores=3, ipconfig0="ip=10.20.0.9/24,gw=10.20.0.1")
    backup(api, 120)
    [entry] = backups_of(api, 120)
    upid = api.nodes("pve2").qemu.post(vmid=130, archive=entry["volid"], storage="local-lvm", unique=1, name="copy")
    assert upid.split(":")[5:7] == ["qmrestore", "130"] and run(api, "pve2", upid) == "OK"
    restored = api.nodes("pve2").qemu(130).config.get()
    assert (restored["name"], restored["cores"], restored["ipconfig0"]) == ("copy", 3, "ip=10.20.0.9/24,gw=10.20.0.1")
    assert restored["scsi0"] == "local-lvm:vm-130-disk-0,size=10G"
    assert restored["ide2"] == "local-lvm:vm-130-cloudinit,media=cdrom"
    assert restored["net0"] != vm.config.get()["net0"] and restored["net0"].startswith("virtio=BC:24:11:")
    assert api.nodes("pve2").qemu(130).status.current.get()["status"] == "stopped"
    fake.assert_no_violations()


def test_restore_refusals(fake, api):
    create_container(api, 101)
    clone_vm(api, 120)
    backup(api, 101)
    backup(api, 120)
    ct_backup, vm_backup = (backups_of(api, vmid)[0]["volid"] for vmid in (101, 120))
    with pytest.raises(ResourceException) as caught:
        api.nodes("pve2").lxc.post(vmid=101, ostemplate=ct_backup, restore=1, storage="local-lvm")
    assert (caught.value.status_code, caught.value.content) == (500, "CT 101 already exists on node 'pve1'")
    missing = "backup:backup/vzdump-lxc-999-2025_01_01-00_00_00.tar.zst"
    with pytest.raises(ResourceException) as caught:
        api.nodes("pve2").lxc.post(vmid=150, ostemplate=missing, restore=1, storage="local-lvm")
    assert caught.value.content == f"can't find file '{missing}'"
    with pytest.raises(ResourceException) as caught:
        api.nodes("pve2").qemu.post(vmid=150, archive=vm_backup, scsi0="local-lvm:10")
    assert caught.value.status_code == 400 and caught.value.errors == {
        "scsi0": "option conflicts with option 'archive'"}
    with pytest.raises(ResourceException) as caught:
        api.nodes("pve2").lxc.post(vmid=150, ostemplate=ct_backup, restore=1)  # storage defaults to local (dir)
    assert caught.value.errors == {"storage": "storage 'local' does not support container directories"}
    assert run(api, "pve2", api.nodes("pve2").qemu.post(vmid=150, archive=ct_backup, storage="local-lvm")) == (
        f"unable to restore VM 150 - archive '{ct_backup}' is not a VM backup")
    assert 150 not in fake.guest_ids()
    fake.fail_task("vzrestore", "unable to restore CT 150 - command failed")
    assert run(api, "pve2", api.nodes("pve2").lxc.post(vmid=150, ostemplate=ct_backup, restore=1,
                                                       storage="local-lvm")) != "OK"
    assert 150 not in fake.guest_ids()


def test_a_vm_is_created_without_an_archive(fake, api):
    upid = api.nodes("pve2").qemu.post(vmid=140, name="blank", memory=1024, scsi0="local-lvm:16",
                                       net0="virtio,bridge=vmbr0", start=1)
    assert upid.split(":")[5] == "qmcreate" and run(api, "pve2", upid) == "OK"
    config = api.nodes("pve2").qemu(140).config.get()
    assert config["scsi0"] == "local-lvm:vm-140-disk-0,size=16G" and config["net0"].startswith("virtio=BC:24:11:")
    assert api.nodes("pve2").qemu(140).status.current.get()["status"] == "running"
    fake.assert_no_violations()


def test_a_volid_with_its_slash_unencoded_is_no_path_of_the_api(fake):
    answer = requests.delete(f"{fake.url}/nodes/pve1/storage/backup/content/backup:backup/vzdump-lxc-101.tar",
                             headers={"Authorization": "PVEAPIToken=root@pam!paas=secret"},
                             verify=fake.ca_bundle_path, timeout=5)
    assert answer.status_code == 501
