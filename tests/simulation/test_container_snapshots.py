"""Snapshots, rollbacks, backups and restores on real guests: the fake Proxmox's actions reach the containers'
files (a snapshot is a copy of the guest's disk, a rollback puts it back, a backup is a zstd tar on the shared
storage's directory, a restore a new guest made from it), and the guests still boot afterwards.

They need root, debootstrap and systemd-nspawn: CI runs them; elsewhere they skip. Their bridges use their own
address blocks (claimed by lock, so two runs on one machine never share one).
"""
import os
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import paramiko
import pytest
from proxmoxer import ProxmoxAPI

from backend.simulation.containers import RUNTIME_PACKAGES, ContainerHost, GuestImage, ProxmoxGuests
from backend.simulation.containers import host as container_host
from backend.simulation.fake_proxmox import FakeProxmox, Node
from backend.simulation.runtime import claim_block
from tests.simulation.test_containers import IMAGE_CACHE, capable, public, ssh

pytestmark = pytest.mark.slow

SNAPSHOT_BLOCKS = range(232, 240)  # bridges paasbr232.. (10.77.232.0/24 ..), apart from test_containers.py's
TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    path = tmp_path_factory.mktemp("key") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return paramiko.Ed25519Key.from_private_key_file(str(path))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(fake, host, backend): a two-node fake Proxmox whose guests are containers (the image with the runtimes,
    which the real-guest tests build), backups in a directory every node shares."""
    if not capable():
        if os.environ.get("CI"):
            pytest.fail("CI must run the real-guest tests: run as root with debootstrap and systemd-container")
        pytest.skip("real guests need root, debootstrap and systemd-nspawn")
    image = GuestImage(IMAGE_CACHE, extra=RUNTIME_PACKAGES).ensure()
    block, lock = claim_block(SNAPSHOT_BLOCKS)
    workdir = tmp_path_factory.mktemp("snapshots")
    try:
        with ContainerHost(workdir / "guests", image, block) as host:
            backend = ProxmoxGuests(host, storage_dir=workdir / "storage")
            with FakeProxmox(nodes=[Node("pve1"), Node("pve2")], task_seconds=0.02, guest_backend=backend) as fake:
                yield fake, host, backend
                fake.assert_no_violations()
            names = list(host.guests)
        assert host.leftovers(names) == []
    finally:
        lock.close()


def connect(fake):
    return ProxmoxAPI(fake.host, port=fake.port, user="root@pam", token_name="paas", token_value="secret",
                      verify_ssl=fake.ca_bundle_path, timeout=10)


def run(api, node, upid, timeout=180):
    """Wait for a task (real work takes a while); its exit status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = api.nodes(node).tasks(upid).status.get()
        if status["status"] == "stopped":
            return status["exitstatus"]
        time.sleep(0.1)
    raise AssertionError(f"task {upid} still running after {timeout}s")


def address(api, node, vmid):
    eth0 = next(i for i in api.nodes(node).lxc(vmid).interfaces.get() if i["name"] == "eth0")
    return eth0["inet"].split("/")[0]


def running_container(api, key, vmid, node="pve1"):
    params = {"vmid": vmid, "ostemplate": TEMPLATE, "hostname": f"app-{vmid}", "rootfs": "local-lvm:8",
              "net0": "name=eth0,bridge=vmbr0,ip=dhcp", "ssh-public-keys": public(key), "start": 1}
    assert run(api, node, api.nodes(node).lxc.post(**params)) == "OK"
    return address(api, node, vmid)


def test_a_rollback_puts_back_the_files_a_snapshot_copied(cluster, key):
    fake, host, _ = cluster
    api = connect(fake)
    guest = running_container(api, key, 101)
    assert ssh(guest, key, "mkdir -p /srv/app && echo v1 > /srv/app/data && echo kept > /srv/app/kept")[0] == 0
    assert run(api, "pve1", api.nodes("pve1").lxc(101).snapshot.post(snapname="before")) == "OK"
    copy = host.guests["g101"].directory / "snapshots" / "before"
    assert (copy / "srv" / "app" / "data").read_text() == "v1\n"

    assert ssh(guest, key, "echo v2 > /srv/app/data && echo new > /srv/app/added && rm /srv/app/kept")[0] == 0
    assert run(api, "pve1", api.nodes("pve1").lxc(101).snapshot("before").rollback.post(start=1)) == "OK"
    assert api.nodes("pve1").lxc(101).status.current.get()["status"] == "running"
    status, output = ssh(guest, key, "cat /srv/app/data /srv/app/kept; test -e /srv/app/added && echo added; "
                                     "systemctl is-system-running --wait")
    assert output.split()[:2] == ["v1", "kept"] and "added" not in output
    assert output.split()[-1] in ("running", "degraded")

    assert run(api, "pve1", api.nodes("pve1").lxc(101).snapshot("before").rollback.post()) == "OK"
    assert not host.guests["g101"].running  # without start the guest stays off
    assert run(api, "pve1", api.nodes("pve1").lxc(101).snapshot("before").delete()) == "OK"
    assert not copy.exists()
    assert run(api, "pve1", api.nodes("pve1").lxc(101).delete()) == "OK"


def test_a_backup_restores_as_a_new_guest_on_the_other_node_that_boots(cluster, key, monkeypatch):
    fake, host, backend = cluster
    api = connect(fake)
    guest = running_container(api, key, 102)
    assert ssh(guest, key, "mkdir -p /srv/app && echo backed-up > /srv/app/data && useradd -m keeper")[0] == 0

    with monkeypatch.context() as patched:  # a machine without zstd: the guest's part fails, and says why
        patched.setattr(container_host.shutil, "which", lambda tool: None if tool == "zstd" else "/usr/bin/" + tool)
        upid = api.nodes("pve1").vzdump.post(vmid="102", storage="backup", compress="zstd", mode="snapshot")
        assert run(api, "pve1", upid) == "job errors"
        log = [line["t"] for line in api.nodes("pve1").tasks(upid).log.get(limit=200)]
        assert "ERROR: Backup of VM 102 failed - vzdump needs the zstd program to compress with zstd: " \
               "apt-get install zstd" in log

    upid = api.nodes("pve1").vzdump.post(vmid="102", storage="backup", compress="zstd", mode="snapshot",
                                         **{"notes-template": "{{guestname}}"})
    assert run(api, "pve1", upid) == "OK", [line["t"] for line in api.nodes("pve1").tasks(upid).log.get(limit=200)]
    [entry] = api.nodes("pve2").storage("backup").content.get(vmid=102)
    archive = backend.storage_dir / "backup" / "dump" / entry["volid"].split("/", 1)[1]
    assert archive.stat().st_size == entry["size"] and entry["notes"] == "app-102"
    members = subprocess.run(["tar", "--zstd", "-tf", str(archive)], capture_output=True, text=True,
                             check=True).stdout.split()
    assert "./etc/vzdump/guest.json" in members and "./srv/app/data" in members

    upid = api.nodes("pve2").lxc.post(vmid=152, ostemplate=entry["volid"], restore=1, storage="local-lvm",
                                      hostname="restored", unique=1, start=1)
    assert run(api, "pve2", upid) == "OK"
    copy = address(api, "pve2", 152)
    assert copy != guest
    status, output = ssh(copy, key, "cat /srv/app/data; hostname; id -u keeper >/dev/null && echo user; "
                                    "test -e /etc/vzdump || echo clean; systemctl is-system-running --wait")
    assert output.split()[:4] == ["backed-up", "restored", "user", "clean"], output
    assert output.split()[-1] in ("running", "degraded")

    for vmid, node in ((102, "pve1"), (152, "pve2")):
        run(api, node, api.nodes(node).lxc(vmid).status.stop.post())
        assert run(api, node, api.nodes(node).lxc(vmid).delete()) == "OK"
    assert archive.exists()  # backups live on their storage, not with the guest
    assert run(api, "pve1", api.nodes("pve1").storage("backup").content(quote(entry["volid"], safe="")).delete()) \
        == "OK"
    assert not archive.exists() and not Path(f"{archive}.notes").exists()
