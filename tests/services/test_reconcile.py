"""reconcile(): the database and the in-memory cluster compared, and with fix, made to agree."""

from backend.models import DeploymentStatus
from backend.proxmox.errors import TaskFailed
from backend.services.provisioning import provision
from backend.services.reconcile import reconcile
from backend.services.release_runs import run_release
from tests.services.conftest import events, fresh, redeploy


def test_a_guest_left_behind_by_a_failed_cleanup_is_reported_and_with_fix_destroyed(new_deployment, job, proxmox):
    ident = new_deployment()
    proxmox.fail_next("start", TaskFailed("task vzstart failed: startup for container '100' failed"))
    proxmox.fail_next("destroy", TaskFailed("task vzdestroy failed: unable to remove volume"))
    provision(job(ident))
    proxmox.add_guest(200, "pve1", name="someone-elses")  # not the platform's: never touched

    report = reconcile(proxmox)

    assert [(o["vmid"], o["deployment_id"], o["reason"]) for o in report.orphans] == [
        (100, str(ident), "its deployment shop-api failed and the guest was left behind")]
    assert report.missing == [] and proxmox.vmids() == [100, 200]

    fixed = reconcile(proxmox, fix=True)

    assert fixed.destroyed == [100] and proxmox.vmids() == [200]
    assert fresh(ident).vm_id is None
    assert "guest 100 destroyed by reconcile" in [m for _, _, m in events(ident)]


def test_a_running_deployment_whose_guest_is_gone_is_reported_and_with_fix_failed(new_deployment, job, proxmox):
    ident = new_deployment()
    provision(job(ident))
    del proxmox.guests_by_vmid[100]

    report = reconcile(proxmox, fix=True)

    assert [m["id"] for m in report.missing] == [str(ident)] and report.marked == [str(ident)]
    row = fresh(ident)
    assert row.status is DeploymentStatus.FAILED
    assert row.error_message == "guest 100 is gone from the cluster (found by reconcile)"


def test_the_guest_a_failed_redeploy_kept_serving_is_not_an_orphan(new_deployment, job, guest_of, app_server,
                                                                  loopback_guests, proxmox, platform):
    ident = new_deployment(port=app_server.port)
    guest = guest_of(ident)
    assert provision(job(ident), deploy_app=run_release) is DeploymentStatus.RUNNING
    redeploy(ident, platform)
    guest.script(".venv/bin/pip", "install", exit_code=1, output=["ERROR: No matching distribution found"])
    assert provision(job(ident), deploy_app=run_release) is DeploymentStatus.RUNNING
    assert fresh(ident).live_release == 1 and guest.current() == "releases/1"  # release 1 still serves

    report = reconcile(proxmox)

    assert report.orphans == []
