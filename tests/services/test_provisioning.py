"""provision(): a pending deployment to a running guest, on the in-memory cluster."""
import dataclasses

import pytest

from backend.models import DeploymentStatus
from backend.proxmox.errors import TaskFailed
from backend.services.job_context import LeaseLost
from backend.services.lifecycle import apply, change_status
from backend.services.provisioning import provision
from tests.services.conftest import TEMPLATE, events, fresh, status_chain


def test_provision_takes_a_pending_deployment_to_running_on_a_tagged_guest(new_deployment, job, proxmox):
    ident = new_deployment(resources={"cores": 2, "memory": 1024, "disk": 12})

    assert provision(job(ident)) is DeploymentStatus.RUNNING

    row = fresh(ident)
    assert row.status is DeploymentStatus.RUNNING and row.error_message is None and row.deployed_at is not None
    assert status_chain(ident) == ["pending", "provisioning", "deploying", "running"]
    guest = proxmox.guest(row.vm_id)
    assert (row.node, row.vm_id) == ("pve2", 100)  # the emptier node, the first free VMID
    assert guest.node == "pve2" and guest.kind == "lxc" and guest.status == "running" and guest.lock is None
    assert guest.tags == ["paas", f"paas-{ident}"] and guest.name == "shop-api"
    assert (guest.cores, guest.memory, guest.disk_gb) == (2, 1024, 12)
    assert guest.config["net0"].endswith(",ip=dhcp") and guest.config["ssh-public-keys"].startswith("ssh-ed25519")
    assert row.ip_address == guest.address == "10.0.0.102"
    messages = [message for _, _, message in events(ident)]
    assert "placed on node pve2" in messages
    assert "creating container 100 on pve2" in messages and "started lxc 100" in messages
    assert "lxc 100 on pve2 is up at 10.0.0.102" in messages
    assert proxmox.call_names().count("create_lxc") == 1


def test_provision_uses_the_pool_address_when_settings_have_an_ip_pool(new_deployment, job, proxmox, settings):
    proxmox.settings = dataclasses.replace(settings, ip_pool="10.10.0.100-10.10.0.101/24", gateway="10.10.0.1")
    first, second = new_deployment(name="shop-a"), new_deployment(name="shop-b")

    assert provision(job(first)) is DeploymentStatus.RUNNING
    assert provision(job(second)) is DeploymentStatus.RUNNING

    a, b = fresh(first), fresh(second)
    assert (a.ip_address, b.ip_address) == ("10.10.0.100", "10.10.0.101")
    assert proxmox.guest(a.vm_id).config["net0"].endswith(",ip=10.10.0.100/24,gw=10.10.0.1")
    assert proxmox.calls_to("create_lxc")[1].kwargs["ip_cidr"] == "10.10.0.101/24"


def test_a_vm_is_cloned_from_the_template_on_its_node_configured_and_grown(new_deployment, job, proxmox):
    ident = new_deployment(name="shop-vm", deployment_type="vm", resources={"cores": 4, "disk": 30})

    assert provision(job(ident)) is DeploymentStatus.RUNNING

    row = fresh(ident)
    guest = proxmox.guest(row.vm_id)
    assert row.node == "pve1" == guest.node  # where the template is, though pve2 has more room
    assert guest.kind == "qemu" and guest.name == "shop-vm" and guest.status == "running"
    assert (guest.cores, guest.memory, guest.disk_gb) == (4, 2048, 30)
    assert guest.tags == ["paas", f"paas-{ident}"] and guest.config["ciuser"] == "paas"
    assert proxmox.calls_to("clone_vm")[0].args == ("pve1", row.vm_id)
    assert [c.name for c in proxmox.calls if c.name in ("clone_vm", "wait_for_task", "configure_vm",
                                                         "grow_vm_disk", "start")] == \
        ["clone_vm", "wait_for_task", "configure_vm", "grow_vm_disk", "start"]
    assert f"cloning template {TEMPLATE} {row.vm_id} on pve1" in [m for _, _, m in events(ident)]


def test_a_failed_start_destroys_the_guest_and_fails_with_the_step_and_proxmox_words(new_deployment, job, proxmox):
    ident = new_deployment()
    proxmox.fail_task("vzstart", "startup for container '100' failed",
                      log=["lxc-start: 100: error mounting rootfs"])

    assert provision(job(ident)) is DeploymentStatus.FAILED

    row = fresh(ident)
    assert row.status is DeploymentStatus.FAILED
    assert row.error_message == ("start failed: task vzstart failed: startup for container '100' failed | log: "
                                 "lxc-start: 100: error mounting rootfs / TASK ERROR: startup for container "
                                 "'100' failed")
    assert proxmox.vmids() == []  # the guest the job made is gone
    assert proxmox.calls_to("destroy")[0].args == ("pve2", 100, "lxc")
    assert (row.vm_id, row.node, row.ip_address) == (None, None, None)
    assert status_chain(ident) == ["pending", "provisioning", "failed"]


def test_a_failed_create_task_leaves_nothing_and_names_the_create_step(new_deployment, job, proxmox):
    ident = new_deployment()
    proxmox.fail_task("vzcreate", "unable to create CT 100 - no space left on device")

    assert provision(job(ident)) is DeploymentStatus.FAILED

    row = fresh(ident)
    assert row.error_message.startswith("create failed: task vzcreate failed: unable to create CT 100 - no space")
    assert proxmox.vmids() == [] and proxmox.calls_to("destroy") == []  # Proxmox removed the failed create
    assert fresh(ident).vm_id is None


def test_a_vmid_taken_meanwhile_is_given_up_and_another_one_used(new_deployment, job, proxmox):
    ident = new_deployment()
    # Someone else creates guest 100 between nextid's answer and this job's create.
    proxmox.before("create_lxc", lambda *a, **k: proxmox.add_guest(100, "pve1", name="someone-else"), once=True)

    assert provision(job(ident)) is DeploymentStatus.RUNNING

    assert [c.args[1] for c in proxmox.calls_to("create_lxc")] == [100, 101]
    assert fresh(ident).vm_id == 101 and proxmox.vmids() == [100, 101]
    assert proxmox.guest(100).name == "someone-else" and proxmox.guest(100).tags == []  # not touched
    assert proxmox.calls_to("destroy") == []


def test_a_delete_during_provisioning_wins_and_leaves_no_guest(new_deployment, job, proxmox):
    ident = new_deployment()

    def user_deletes(*args, **kwargs):
        apply(ident, lambda row: change_status(row, DeploymentStatus.DELETING, "delete requested"))
    proxmox.before("start", user_deletes)  # the user deletes while the guest is being made

    assert provision(job(ident)) is DeploymentStatus.DELETED

    row = fresh(ident)
    assert row.status is DeploymentStatus.DELETED and row.deleted_at is not None and row.ip_address is None
    assert proxmox.vmids() == []
    assert status_chain(ident) == ["pending", "provisioning", "deleting", "deleted"]
    assert "guest destroyed" in [m for _, _, m in events(ident)]


def test_a_delete_before_the_job_starts_deletes_without_making_a_guest(new_deployment, job, proxmox):
    ident = new_deployment()
    apply(ident, lambda row: change_status(row, DeploymentStatus.DELETING, "delete requested"))

    assert provision(job(ident)) is DeploymentStatus.DELETED

    assert fresh(ident).status is DeploymentStatus.DELETED
    assert not {"create_lxc", "clone_vm", "start"} & set(proxmox.call_names())


def test_a_second_run_finds_the_guest_by_its_tag_and_does_not_create_another(new_deployment, job, proxmox):
    ident = new_deployment()
    proxmox.fail_next("start", LeaseLost())  # the first run stops right after its guest was made

    with pytest.raises(LeaseLost):
        provision(job(ident))
    cut_off = fresh(ident)
    assert cut_off.status is DeploymentStatus.PROVISIONING and cut_off.vm_id == 100
    assert proxmox.guest(100).status == "stopped" and f"paas-{ident}" in proxmox.guest(100).tags

    assert provision(job(ident)) is DeploymentStatus.RUNNING

    assert proxmox.vmids() == [100] and len(proxmox.calls_to("create_lxc")) == 1
    assert fresh(ident).vm_id == 100 and proxmox.guest(100).status == "running"
    assert "resuming with lxc 100 on pve2, found by its tag" in [m for _, _, m in events(ident)]


def test_a_run_cut_off_during_the_create_finds_the_untagged_guest_at_its_vmid_and_waits_for_it(new_deployment,
                                                                                             job, proxmox):
    ident = new_deployment()
    proxmox.task_polls = 2  # the create task is seen running twice before it ends
    proxmox.fail_next("wait_for_task", LeaseLost())

    with pytest.raises(LeaseLost):
        provision(job(ident))
    assert proxmox.guest(100).lock == "create" and proxmox.guest(100).tags == []

    assert provision(job(ident)) is DeploymentStatus.RUNNING

    assert proxmox.vmids() == [100] and len(proxmox.calls_to("create_lxc")) == 1
    guest = proxmox.guest(100)
    assert guest.lock is None and guest.status == "running" and f"paas-{ident}" in guest.tags


def test_no_node_with_room_fails_the_placement_without_a_guest(new_deployment, job, proxmox):
    for node in proxmox.nodes_by_name.values():
        node.status = "offline"
    ident = new_deployment()

    assert provision(job(ident)) is DeploymentStatus.FAILED

    row = fresh(ident)
    assert row.error_message == "placement failed: no online node has 512 MB memory and 8 GB disk free"
    assert proxmox.vmids() == [] and "create_lxc" not in proxmox.call_names()


def test_a_guest_without_an_address_fails_the_address_step_and_is_destroyed(new_deployment, job, proxmox):
    proxmox.dhcp_address = lambda vmid: "169.254.3.4"  # link-local only: DHCP never answered
    ident = new_deployment()

    assert provision(job(ident)) is DeploymentStatus.FAILED

    assert fresh(ident).error_message == "address failed: lxc 100 reported no IPv4 address within 30 s"
    assert proxmox.vmids() == []


def test_provisioning_a_running_deployment_changes_nothing(new_deployment, job, proxmox):
    ident = new_deployment()
    provision(job(ident))
    before = len(proxmox.calls)

    assert provision(job(ident)) is DeploymentStatus.RUNNING

    assert proxmox.calls[before:] == []
    assert status_chain(ident) == ["pending", "provisioning", "deploying", "running"]


def test_a_failed_start_with_the_destroy_failing_too_says_so_and_keeps_the_guest_recorded(new_deployment, job,
                                                                                          proxmox):
    ident = new_deployment()
    proxmox.fail_next("start", TaskFailed("task vzstart failed: startup for container '100' failed"))
    proxmox.fail_next("destroy", TaskFailed("task vzdestroy failed: unable to remove volume"))

    assert provision(job(ident)) is DeploymentStatus.FAILED

    row = fresh(ident)
    assert row.error_message == ("start failed: task vzstart failed: startup for container '100' failed; the guest "
                                 "could not be removed (task vzdestroy failed: unable to remove volume), reconcile "
                                 "will report it")
    assert row.vm_id == 100 and proxmox.vmids() == [100]  # what reconcile needs to find it


def test_a_vmid_another_deployment_holds_in_the_database_is_passed_over(new_deployment, job, proxmox):
    first = new_deployment(name="shop-a")
    provision(job(first))
    del proxmox.guests_by_vmid[100]  # its guest was removed behind the platform's back: Proxmox offers 100 again
    second = new_deployment(name="shop-b")

    assert provision(job(second)) is DeploymentStatus.RUNNING

    vmid = fresh(second).vm_id
    assert 101 <= vmid <= 110 and proxmox.calls_to("check_vmid")[-1].args == (vmid,)  # probed above 100
    assert [c.args[1] for c in proxmox.calls_to("create_lxc")] == [100, vmid]
    assert fresh(first).vm_id == 100  # the first deployment's record is left alone


def test_a_job_that_runs_out_of_time_fails_the_step_it_was_in_and_removes_the_guest(new_deployment, job, proxmox):
    ident = new_deployment()
    ctx = job(ident, time_limit=300)
    proxmox.before("start", lambda *args, **kwargs: setattr(ctx, "deadline", 0), once=True)  # time is up

    assert provision(ctx) is DeploymentStatus.FAILED

    assert fresh(ident).error_message == "start failed: the job ran out of its 300 s time limit"
    assert proxmox.vmids() == []  # the cleanup got its own time


def test_of_two_guests_tagged_for_one_deployment_the_one_at_its_vmid_is_kept(new_deployment, job, proxmox):
    ident = new_deployment()
    proxmox.fail_next("start", LeaseLost())
    with pytest.raises(LeaseLost):
        provision(job(ident))
    # A run before it had made another guest and was cut off before it could record it.
    proxmox.add_guest(101, "pve1", name="shop-api", tags=["paas", f"paas-{ident}"])

    assert provision(job(ident)) is DeploymentStatus.RUNNING

    assert proxmox.vmids() == [100] and fresh(ident).vm_id == 100
    assert [c.args for c in proxmox.calls_to("destroy")] == [("pve1", 101, "lxc")]
