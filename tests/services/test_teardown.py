"""destroy(): a deployment's guest goes, then its row is deleted; and what happens when that cannot be."""
import dataclasses

from backend.extensions import db
from backend.models import Deployment, DeploymentStatus, IpReservation
from backend.platform import Platform
from backend.proxmox.errors import ProxmoxError
from backend.services.deployments import request_delete
from backend.services.job_context import JobContext
from backend.services.provisioning import provision
from backend.services.teardown import destroy
from tests.services.conftest import events, fresh, status_chain


def delete(ident):
    """What DELETE /api/deployments/<id> does before its job runs."""
    assert request_delete(db.session.get(Deployment, ident))
    db.session.remove()


def test_destroy_stops_and_destroys_the_guest_tells_the_hooks_and_frees_the_pool_address(new_deployment, job,
                                                                                       proxmox, settings, hooks):
    proxmox.settings = dataclasses.replace(settings, ip_pool="10.10.0.100-10.10.0.110/24")
    ident = new_deployment()
    provision(job(ident))
    assert db.session.query(IpReservation).count() == 1
    db.session.remove()
    delete(ident)

    assert destroy(job(ident, watch_deletion=False)) is DeploymentStatus.DELETED

    row = fresh(ident)
    assert row.status is DeploymentStatus.DELETED and row.deleted_at is not None and row.ip_address is None
    assert proxmox.vmids() == [] and proxmox.calls_to("destroy")[0].args == ("pve2", 100, "lxc")
    assert hooks.names() == ["destroying"] and hooks.events[0][1].name == str(ident)
    assert db.session.query(IpReservation).count() == 0
    assert status_chain(ident)[-2:] == ["deleting", "deleted"]
    assert any(m.startswith("destroyed lxc 100 on pve2") for _, _, m in events(ident))


def test_destroy_of_a_deployment_whose_guest_is_gone_already_deletes_it(new_deployment, job, proxmox):
    ident = new_deployment()
    provision(job(ident))
    del proxmox.guests_by_vmid[100]  # someone removed it in the Proxmox UI
    delete(ident)

    assert destroy(job(ident, watch_deletion=False)) is DeploymentStatus.DELETED

    assert fresh(ident).status is DeploymentStatus.DELETED and proxmox.calls_to("destroy") == []


def test_destroy_failing_at_proxmox_fails_the_deployment_so_that_it_can_be_deleted_again(new_deployment, job,
                                                                                        proxmox):
    ident = new_deployment()
    provision(job(ident))
    delete(ident)
    proxmox.fail_next("destroy", ProxmoxError("unable to remove volume: storage is busy", status=500))

    assert destroy(job(ident, watch_deletion=False)) is DeploymentStatus.FAILED

    row = fresh(ident)
    assert row.status is DeploymentStatus.FAILED and row.vm_id == 100 and proxmox.vmids() == [100]
    assert row.error_message == "delete failed: unable to remove volume: storage is busy; delete it again to retry"

    delete(ident)
    assert destroy(job(ident, watch_deletion=False)) is DeploymentStatus.DELETED
    assert proxmox.vmids() == []


def test_destroy_is_idempotent(new_deployment, job, proxmox):
    ident = new_deployment()
    provision(job(ident))
    delete(ident)
    destroy(job(ident, watch_deletion=False))
    calls = len(proxmox.calls)

    assert destroy(job(ident, watch_deletion=False)) is DeploymentStatus.DELETED
    assert proxmox.calls[calls:] == []


def test_a_deployment_that_never_had_a_guest_is_deleted_without_proxmox(new_deployment, platform, hooks, limits):
    ident = new_deployment()
    delete(ident)
    without_cluster = Platform(proxmox=None, transports=None, guest_hooks=hooks, deploy_limits=limits)

    assert destroy(JobContext(ident, without_cluster, watch_deletion=False)) is DeploymentStatus.DELETED

    assert fresh(ident).status is DeploymentStatus.DELETED


def test_a_delete_after_a_run_cut_off_during_its_create_waits_for_the_create_then_destroys(new_deployment, job,
                                                                                          proxmox):
    from backend.services.job_context import LeaseLost

    ident = new_deployment()
    proxmox.task_polls = 1
    proxmox.fail_next("wait_for_task", LeaseLost())
    try:
        provision(job(ident))
    except LeaseLost:
        pass
    assert proxmox.guest(100).lock == "create" and proxmox.guest(100).tags == []  # untagged while being made
    delete(ident)

    assert destroy(job(ident, watch_deletion=False)) is DeploymentStatus.DELETED

    assert proxmox.vmids() == [] and proxmox.calls_to("destroy")[0].args == ("pve2", 100, "lxc")
