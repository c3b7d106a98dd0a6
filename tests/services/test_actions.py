"""power(), resize() and finish_after_crash() on a provisioned guest of the in-memory cluster."""
import pytest

from backend.extensions import db
from backend.models import Deployment, DeploymentStatus
from backend.proxmox.errors import ProxmoxError, TaskFailed
from backend.services.actions import finish_after_crash, power, resize
from backend.services.deployments import update_deployment
from backend.services.lifecycle import apply, change_status
from backend.services.provisioning import provision
from tests.services.conftest import events, fresh, status_chain


@pytest.fixture
def running(new_deployment, job, proxmox):
    """A deployment provisioned to running on lxc 100."""
    ident = new_deployment()
    assert provision(job(ident)) is DeploymentStatus.RUNNING
    proxmox.calls.clear()
    return ident


def test_stop_and_start_tell_the_guest_hooks_and_follow_the_status(running, job, proxmox, hooks):
    assert power(job(running), "stop") is DeploymentStatus.STOPPED

    assert fresh(running).status is DeploymentStatus.STOPPED and proxmox.guest(100).status == "stopped"
    assert proxmox.call_names() == ["shutdown"]
    assert proxmox.calls_to("shutdown")[0].args == ("pve2", 100, "lxc")
    assert hooks.names() == ["stopped"]

    assert power(job(running), "start") is DeploymentStatus.RUNNING

    row = fresh(running)
    assert row.status is DeploymentStatus.RUNNING and proxmox.guest(100).status == "running"
    assert proxmox.call_names() == ["shutdown", "set_size", "grow_disk", "status", "start", "guest_ip"]
    assert hooks.names() == ["stopped", "started"]
    target = hooks.events[-1][1]
    assert (target.name, target.address, target.kind) == (str(running), "10.0.0.102", "lxc")
    assert status_chain(running)[-2:] == ["stopped", "running"]
    assert {"shut down lxc 100", "starting lxc 100"} <= {m for _, _, m in events(running)}


def test_restart_reboots_the_guest_and_stays_running(running, job, proxmox, hooks):
    assert power(job(running), "restart") is DeploymentStatus.RUNNING

    assert proxmox.call_names() == ["reboot"] and hooks.names() == ["restarted"]
    assert fresh(running).status is DeploymentStatus.RUNNING
    assert "restarted lxc 100" in [m for kind, _, m in events(running) if kind == "action"]


def test_a_failed_stop_leaves_the_status_says_why_and_tells_no_hook(running, job, proxmox, hooks):
    proxmox.fail_next("shutdown", ProxmoxError("VM is locked (backup)", status=500))

    assert power(job(running), "stop") is DeploymentStatus.RUNNING

    row = fresh(running)
    assert row.status is DeploymentStatus.RUNNING and row.error_message == "stop failed: VM is locked (backup)"
    assert ("error", None, "stop failed: VM is locked (backup)") in events(running)
    assert hooks.names() == [] and proxmox.guest(100).status == "running"


def test_a_shutdown_that_fails_becomes_a_stop(running, job, proxmox):
    proxmox.fail_task("vzshutdown", "shutdown timed out")

    assert power(job(running), "stop") is DeploymentStatus.STOPPED

    assert proxmox.guest(100).status == "stopped" and fresh(running).error_message is None


def test_an_action_that_does_not_apply_now_is_skipped_without_asking_proxmox(running, job, proxmox, hooks):
    assert power(job(running), "start") is DeploymentStatus.RUNNING

    assert proxmox.calls == [] and hooks.names() == []
    assert "start skipped: the deployment is running now" in [m for _, _, m in events(running)]


def test_start_gives_a_stopped_guest_the_size_the_deployment_has_now(running, job, proxmox, owner):
    power(job(running), "stop")
    deployment = db.session.get(Deployment, running)
    _, resize_guest = update_deployment(deployment, {"resources": {"cores": 3, "memory": 2048, "disk": 20}})
    db.session.remove()
    assert resize_guest  # a resize job would run; the start does it first anyway

    assert power(job(running), "start") is DeploymentStatus.RUNNING

    guest = proxmox.guest(100)
    assert (guest.cores, guest.memory, guest.disk_gb) == (3, 2048, 20)


def test_resize_gives_a_stopped_guest_its_new_cores_memory_and_a_bigger_disk(running, job, proxmox):
    power(job(running), "stop")
    deployment = db.session.get(Deployment, running)
    update_deployment(deployment, {"resources": {"cores": 2, "memory": 1024, "disk": 16}})
    db.session.remove()

    assert resize(job(running)) is DeploymentStatus.STOPPED

    guest = proxmox.guest(100)
    assert (guest.cores, guest.memory, guest.disk_gb, guest.status) == (2, 1024, 16, "stopped")
    assert "resized lxc 100: 2 cores, 1024 MB, 16 GB disk" in [m for _, _, m in events(running)]


def test_resize_of_a_running_deployment_is_skipped(running, job, proxmox):
    assert resize(job(running)) is DeploymentStatus.RUNNING
    assert proxmox.calls == []


def test_a_start_that_fails_keeps_the_deployment_stopped_with_the_reason(running, job, proxmox, hooks):
    power(job(running), "stop")
    proxmox.fail_task("vzstart", "startup for container '100' failed")

    assert power(job(running), "start") is DeploymentStatus.STOPPED

    row = fresh(running)
    assert row.status is DeploymentStatus.STOPPED
    assert row.error_message.startswith("start failed: task vzstart failed: startup for container '100' failed")
    assert hooks.names() == ["stopped"]


def test_a_job_that_crashed_leaves_an_unfinished_deployment_failed_and_a_finished_one_alone(new_deployment, running):
    pending = new_deployment(name="shop-b")

    finish_after_crash(pending, "provision", KeyError("x"))
    finish_after_crash(running, "stop", KeyError("x"))

    assert fresh(pending).status is DeploymentStatus.FAILED
    assert fresh(pending).error_message == "provision stopped by an internal error (KeyError); see the server log"
    assert fresh(running).status is DeploymentStatus.RUNNING


def test_a_proxmox_task_failure_during_stop_is_worded_with_its_log(running, job, proxmox):
    proxmox.fail_next("shutdown", TaskFailed("task vzshutdown failed: got unexpected error",
                                             log_tail=["command 'lxc-stop' failed"]))

    power(job(running), "stop")

    assert fresh(running).error_message == ("stop failed: task vzshutdown failed: got unexpected error | log: "
                                            "command 'lxc-stop' failed")


def test_a_start_whose_address_step_failed_can_be_started_again(running, job, proxmox):
    power(job(running), "stop")
    proxmox.guest(100).address = "169.254.7.7"  # the guest comes up, but DHCP does not answer this time

    assert power(job(running), "start") is DeploymentStatus.STOPPED
    assert fresh(running).error_message == "start failed: lxc 100 reported no IPv4 address within 30 s"
    assert proxmox.guest(100).status == "running"  # Proxmox did start it
    proxmox.guest(100).address = "10.0.0.102"  # DHCP answers again

    assert power(job(running), "start") is DeploymentStatus.RUNNING
    assert fresh(running).status is DeploymentStatus.RUNNING and fresh(running).error_message is None


def test_a_delete_during_a_stop_wins_and_destroys_the_guest(running, job, proxmox, hooks):
    ctx = job(running)

    def user_deletes(*args, **kwargs):
        apply(running, lambda row: change_status(row, DeploymentStatus.DELETING, "delete requested"))
        ctx.cancelled.set()  # what the job's heartbeat does when it sees the row deleting
    proxmox.before("shutdown", user_deletes, once=True)

    assert power(ctx, "stop") is DeploymentStatus.DELETED

    assert fresh(running).status is DeploymentStatus.DELETED and proxmox.vmids() == []
    assert hooks.names() == ["destroying"]  # never "stopped": the stop did not finish


def test_a_guest_hook_that_fails_does_not_fail_the_action(running, job, proxmox, hooks):
    def broken(target):
        raise OSError("the sandbox is gone")
    hooks.stopped = broken

    assert power(job(running), "stop") is DeploymentStatus.STOPPED
    assert fresh(running).status is DeploymentStatus.STOPPED and fresh(running).error_message is None
