"""The Proxmox client against the fake Proxmox, over real HTTPS with the real proxmoxer."""
import pytest

from backend.proxmox.client import ProxmoxClient, join_tags, usable_ipv4
from backend.proxmox.errors import GuestExists, ProxmoxError, ProxmoxTimeout, TaskFailed
from backend.proxmox.settings import ProxmoxSettings
from tests.helpers.apps import proxmox_settings_for


@pytest.fixture(autouse=True)
def no_schema_violations(fake):
    """Every request the client sent is one the real Proxmox would accept."""
    yield
    fake.assert_no_violations()


def settings_for(fake, **overrides):
    """The fake's settings, with the shorter task timeout these client tests use."""
    return proxmox_settings_for(fake, **{"task_timeout": 10, **overrides})


@pytest.fixture
def client(fake):
    return ProxmoxClient(settings_for(fake), sleep=lambda s: None if s > 0.5 else __import__("time").sleep(s))


def test_an_lxc_guest_is_created_started_addressed_and_destroyed(fake, client):
    node = client.choose_node(memory_mb=512, disk_gb=8)
    vmid = client.next_vmid()
    upid = client.create_lxc(node, vmid, hostname="shop-api", cores=1, memory=512, disk=8,
                             tags=["paas", "paas-1234"])
    assert upid.startswith("UPID:") and len(upid.split(":")) == 9
    client.wait_for_task(upid)
    client.start(node, vmid, "lxc")
    ip = client.guest_ip(node, vmid, "lxc")
    assert usable_ipv4(ip)
    assert client.status(node, vmid, "lxc")["status"] == "running"
    assert [g["vmid"] for g in client.guests(tag="paas-1234")] == [vmid]
    client.destroy(node, vmid, "lxc")
    assert vmid not in fake.guest_ids()


def test_a_vm_is_cloned_on_the_templates_node_configured_grown_and_addressed(fake, client):
    node = client.choose_node(2048, 20, template_node=client.template_node(9000))
    assert node == "pve1"
    vmid = client.next_vmid()
    client.wait_for_task(client.clone_vm(node, vmid, name="shop-vm"))
    client.configure_vm(node, vmid, cores=2, memory=2048, tags=["paas"], ip_cidr="10.20.0.5/24")
    client.grow_vm_disk(node, vmid, 20)
    config = client.guest_config(node, vmid, "qemu")
    assert config["cores"] == 2 and "10.20.0.5/24" in config["ipconfig0"]
    assert "%20" in config["sshkeys"] or " " in config["sshkeys"]
    client.start(node, vmid, "qemu")
    assert usable_ipv4(client.guest_ip(node, vmid, "qemu"))
    client.destroy(node, vmid, "qemu")
    assert vmid not in fake.guest_ids()


def test_a_taken_vmid_is_reported_as_guest_exists(fake, client):
    fake.nextid_fixed = 150
    client.wait_for_task(client.create_lxc("pve1", client.next_vmid(), hostname="first", cores=1, memory=512,
                                           disk=8, tags=["paas"]))
    with pytest.raises(GuestExists):
        client.create_lxc("pve1", client.next_vmid(), hostname="second", cores=1, memory=512, disk=8, tags=["paas"])


def test_a_failed_task_raises_with_its_exit_status_and_log(fake, client):
    fake.fail_task("vzcreate", error="unable to create CT 100 - storage full")
    upid = client.create_lxc("pve1", client.next_vmid(), hostname="doomed", cores=1, memory=512, disk=8,
                             tags=["paas"])
    with pytest.raises(TaskFailed) as info:
        client.wait_for_task(upid)
    assert "storage full" in str(info.value)


def test_transient_failures_are_retried_and_a_400_is_not(fake, client):
    fake.fail_next("GET", r".*/cluster/nextid", status=503, reason="Service Unavailable", times=2)
    assert client.next_vmid() >= 100
    with pytest.raises(ProxmoxError) as info:
        client.call("get", "nodes/pve1/lxc/99")
    assert info.value.status == 400 and not info.value.transient
    fake.schema_violations.clear()  # that request was wrong on purpose


def test_a_lock_timeout_is_retried(fake, client):
    vmid = client.next_vmid()
    client.wait_for_task(client.clone_vm("pve1", vmid, name="locky"))
    fake.lock_timeouts = 2
    client.configure_vm("pve1", vmid, cores=1, memory=1024, tags=["paas"])
    assert client.guest_config("pve1", vmid, "qemu")["memory"] in (1024, "1024")


def test_an_agent_that_never_answers_times_out(fake, client):
    fake.agent_never_answers = True
    vmid = client.next_vmid()
    client.wait_for_task(client.clone_vm("pve1", vmid, name="silent"))
    client.configure_vm("pve1", vmid, cores=1, memory=1024, tags=["paas"])
    client.start("pve1", vmid, "qemu")
    with pytest.raises(ProxmoxTimeout):
        client.guest_ip("pve1", vmid, "qemu", timeout=0.5)


def test_an_offline_node_is_never_chosen(fake, client):
    fake.set_node_offline("pve2")
    assert client.choose_node(512, 8) == "pve1"
    with pytest.raises(ProxmoxError):
        ProxmoxClient(settings_for(fake, node="pve2")).choose_node(512, 8)


def test_bad_credentials_are_a_permanent_error(fake):
    bad = ProxmoxClient(settings_for(fake, token_value="wrong"))
    with pytest.raises(ProxmoxError) as info:
        bad.nodes()
    assert info.value.status == 401 and "wrong" not in str(info.value)


def test_tags_are_lowercase_and_checked():
    assert join_tags(["PaaS", "paas", "id-1"]) == "paas;id-1"
    with pytest.raises(ValueError):
        join_tags(["bad tag"])


def test_settings_never_show_secrets():
    settings = ProxmoxSettings.from_env({"PROXMOX_HOST": "pve", "PROXMOX_TOKEN_VALUE": "s3cr3t",
                                         "PROXMOX_PASSWORD": "pw"})
    assert "s3cr3t" not in repr(settings) and "pw" not in repr(settings).replace("port", "")
    assert ProxmoxSettings.from_env({}) is None
