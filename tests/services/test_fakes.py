"""The fakes keep the real interfaces: a service test on them would break where the real collaborator breaks."""
import inspect
import re
from pathlib import Path

import pytest

from backend.deploy.guests import NoGuestHooks, SSHTransports
from backend.deploy.transport import CommandResult, Transport
from backend.platform import ProxmoxClients
from backend.proxmox.client import ProxmoxClient
from backend.proxmox.errors import ProxmoxError, TaskFailed
from tests.fakes.proxmox import FakeProxmoxClient, FakeProxmoxClients
from tests.fakes.transport import FakeTransport, FakeTransports, RecordingHooks

SERVICES = Path(__file__).resolve().parents[2] / "backend" / "services"
CLIENT_METHODS = ("nodes", "choose_node", "next_vmid", "check_vmid", "guests", "template_node", "wait_for_task",
                  "create_lxc", "clone_vm", "configure_vm", "grow_vm_disk", "grow_disk", "set_size", "start", "stop",
                  "reboot", "shutdown", "status", "destroy", "guest_ip", "call", "snapshots", "snapshot",
                  "delete_snapshot", "rollback", "vzdump", "backups", "delete_volume", "prune_plan", "restore",
                  "root_disk_storage")
TRANSPORT_METHODS = ("run", "upload", "install_service", "start_service", "stop_service", "restart_service",
                     "service_log", "service_running", "close")


def signature(cls, name):
    return inspect.signature(getattr(cls, name))


@pytest.mark.parametrize("name", CLIENT_METHODS)
def test_the_fake_proxmox_client_has_the_real_clients_signature(name):
    assert signature(FakeProxmoxClient, name) == signature(ProxmoxClient, name)


def test_every_client_method_the_services_call_is_in_the_fake():
    called = set()
    for source in SERVICES.glob("*.py"):
        called |= set(re.findall(r"(?:client|proxmox\(\)|_quick_client\(proxmox\))\.(\w+)\(", source.read_text()))
    called -= {"proxmox"}  # ctx.proxmox() itself
    assert called and called <= set(CLIENT_METHODS), called - set(CLIENT_METHODS)


@pytest.mark.parametrize("name", TRANSPORT_METHODS)
def test_the_fake_transport_has_the_transport_interfaces_signature(name):
    assert issubclass(FakeTransport, Transport)
    assert signature(FakeTransport, name) == signature(Transport, name)


@pytest.mark.parametrize("cls,real,names", [
    (FakeProxmoxClients, ProxmoxClients, ("job_client", "keep_connection", "quick_client")),
    (FakeTransports, SSHTransports, ("open",)),
    (RecordingHooks, NoGuestHooks, ("started", "stopped", "restarted", "destroying")),
])
def test_the_factories_and_hooks_have_the_real_signatures(cls, real, names):
    for name in names:
        assert signature(cls, name) == signature(real, name), name


def test_the_fake_transport_answers_by_the_longest_prefix_and_unwraps_build_commands():
    transport = FakeTransport()
    transport.script("git", output=["git"]).script("git", "rev-parse", exit_code=3, output=["a", "b"])
    transport.script("pip", "install", exit_code=1, output=["no index"])
    lines = []

    assert transport.run(["git", "rev-parse", "HEAD"], on_line=lines.append) == CommandResult(3, ["a", "b"])
    assert transport.run(["git", "status"]).tail == ["git"]
    wrapped = ["sh", "-c", '. "$1" && shift && exec "$@"', "paas-build", "/srv/paas/releases/1/env.sh", "pip",
               "install", "-r", "requirements.txt"]
    assert transport.run(wrapped, as_app_user=True).exit_code == 1
    assert lines == ["a", "b"] and transport.ran("pip", "install")[0].as_app_user
    transport.script("pip", "install")  # a later rule for the same prefix replaces the earlier one
    assert transport.run(["pip", "install", "flask"]).ok
    with pytest.raises(TypeError):
        transport.run("git status")  # a command is an argument list, never a string


def test_the_fake_transport_keeps_release_directories_and_the_current_link():
    transport = FakeTransport()
    transport.run(["mkdir", "-p", "--", "/srv/paas/releases/1/src"])
    transport.run(["ln", "-sfn", "--", "releases/1", "/srv/paas/current.next"])
    transport.run(["mv", "-Tf", "--", "/srv/paas/current.next", "/srv/paas/current"])

    assert transport.run(["readlink", "--", "/srv/paas/current"]).tail == ["releases/1"]
    assert transport.run(["test", "-d", "/srv/paas/releases/1/src"]).ok
    assert transport.run(["ls", "-1", "--", "/srv/paas/releases"]).tail == ["1"]
    transport.run(["rm", "-rf", "--", "/srv/paas/releases/1"])
    assert not transport.run(["test", "-d", "/srv/paas/releases/1/src"]).ok


def test_the_fake_cluster_keeps_a_create_locked_and_untagged_until_its_task_ends(settings):
    cluster = FakeProxmoxClient(settings, ["pve1"], task_polls=1)
    upid = cluster.create_lxc("pve1", 100, hostname="web", cores=1, memory=512, disk=8, tags=["paas", "paas-x"])

    seen = cluster.guests()[0]
    assert (seen["lock"], seen["name"], seen["tags"]) == ("create", None, [])
    assert cluster.wait_for_task(upid)["exitstatus"] == "OK"
    assert cluster.guests()[0]["tags"] == ["paas", "paas-x"] and cluster.guests()[0]["lock"] is None
    assert [line["t"] for line in cluster.call("get", f"nodes/pve1/tasks/{upid}/log")][-1] == "TASK OK"


def test_the_fake_cluster_fails_what_it_is_told_to_and_records_only_the_services_calls(settings):
    cluster = FakeProxmoxClient(settings, ["pve1"])
    cluster.add_guest(100, status="running")
    cluster.fail_next("status", ProxmoxError("Connection refused", status=None))
    cluster.fail_task("vzdestroy", "unable to remove volume")

    with pytest.raises(ProxmoxError, match="Connection refused"):
        cluster.status("pve1", 100, "lxc")
    with pytest.raises(TaskFailed, match="task vzdestroy failed: unable to remove volume"):
        cluster.destroy("pve1", 100, "lxc")  # stops the guest first (a call of its own, not recorded)

    assert cluster.call_names() == ["status", "destroy"]
    assert cluster.guest(100).status == "stopped"
    with pytest.raises(ValueError):
        cluster.start("pve1", 99, "lxc")  # not a VMID, as ProxmoxClient refuses it
