"""backend/jobs/runner.py execute(): a job takes the lease and hands the app's platform to the services."""
import pytest

from backend.jobs.runner import Retry, execute
from backend.models import DeploymentStatus
from backend.services import lifecycle
from tests.services.conftest import fresh


def test_a_provision_job_runs_on_the_apps_platform_and_gives_its_lease_back(app, platform, new_deployment, proxmox):
    platform.transports = None  # apps are not deployed: the job ends at a running guest
    ident = new_deployment()

    assert execute(app, "provision", ident) is DeploymentStatus.RUNNING

    row = fresh(ident)
    assert row.status is DeploymentStatus.RUNNING and row.vm_id == 100 and proxmox.guest(100).status == "running"
    assert (row.job_owner, row.job_lease_until) == (None, None)
    assert platform.proxmox.kept == [proxmox]  # the thread's next job may reuse the connection


def test_a_job_waits_while_another_holds_the_lease(app, platform, new_deployment, proxmox):
    ident = new_deployment()
    assert lifecycle.take_lease(ident, "another-worker:1", 60)

    with pytest.raises(Retry):
        execute(app, "provision", ident)

    assert fresh(ident).status is DeploymentStatus.PENDING and proxmox.calls == []


def test_power_jobs_reach_the_guest_hooks_through_the_platform(app, platform, new_deployment, hooks):
    platform.transports = None
    ident = new_deployment()
    execute(app, "provision", ident)

    assert execute(app, "stop", ident) is DeploymentStatus.STOPPED
    assert execute(app, "start", ident) is DeploymentStatus.RUNNING
    assert execute(app, "destroy", ident) is DeploymentStatus.DELETED

    assert hooks.names() == ["stopped", "started", "destroying"]
    assert fresh(ident).status is DeploymentStatus.DELETED
