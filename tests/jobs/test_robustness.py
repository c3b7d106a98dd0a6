"""Static IP pool, queue failures, leases and the sweep."""
import uuid
from datetime import timedelta

from click.testing import CliRunner

from backend.extensions import db
from backend.jobs.backends import ManualJobs
from backend.jobs.recovery import recover
from backend.models import Deployment, DeploymentStatus
from backend.models.types import utcnow
from backend.platform import platform_of
from backend.services import lifecycle
from manage_db import cli
from tests.helpers.api import create_deployment, wait_for_status
from tests.helpers.apps import app_on_fake_proxmox, guests_of, proxmox_settings_for


def test_the_static_pool_gives_each_concurrent_deployment_its_own_address(database_url, fake):
    settings = proxmox_settings_for(fake, ip_pool="10.20.0.10-10.20.0.17/24", gateway="10.20.0.1")
    app = app_on_fake_proxmox(database_url, fake, settings=settings, JOB_WORKERS=8)
    client = app.test_client()
    try:
        ids = [create_deployment(client, name=f"pool-{n}")["id"] for n in range(8)]
        assert platform_of(app).jobs.wait_idle(120)
        finals = [wait_for_status(client, ident) for ident in ids]
        assert [d["status"] for d in finals] == ["running"] * 8, [d["error_message"] for d in finals]
        addresses = sorted(d["ip_address"] for d in finals)
        assert addresses == [f"10.20.0.{n}" for n in range(10, 18)]
        for deployment in finals:
            net0 = fake.guest(deployment["vm_id"]).config["net0"]
            assert f"ip={deployment['ip_address']}/24,gw=10.20.0.1" in net0

        exhausted = wait_for_status(client, create_deployment(client, name="pool-extra")["id"])
        assert exhausted["status"] == "failed" and "every address" in exhausted["error_message"]
        client.delete(f"/api/deployments/{ids[0]}")
        wait_for_status(client, ids[0], {"deleted"})
        again = wait_for_status(client, create_deployment(client, name="pool-again")["id"])
        assert again["status"] == "running" and again["ip_address"] == finals[0]["ip_address"]
        fake.assert_no_violations()
    finally:
        platform_of(app).jobs.wait_idle(30)
        platform_of(app).jobs.shutdown()


class BrokenQueue(ManualJobs):
    def submit(self, kind, deployment_id, delay=0.0):
        raise ConnectionError("broker down")


def test_when_the_queue_is_down_nothing_is_promised(database_url, fake):
    app = app_on_fake_proxmox(database_url, fake, backend="manual")
    client = app.test_client()
    platform_of(app).jobs = BrokenQueue(app)
    created = client.post("/api/deployments", json={"name": "lonely", "deployment_type": "lxc",
                                                     "framework": "flask",
                                                     "github_url": "https://github.com/acme/lonely"})
    assert created.status_code == 201
    deployment = wait_for_status(client, created.get_json()["deployment"]["id"])
    assert deployment["status"] == "failed" and "job queue is unreachable" in deployment["error_message"]
    response = client.delete(f"/api/deployments/{deployment['id']}")
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "queue_unavailable"
    # Recorded all the same: the sweep or the next worker start finishes it.
    assert wait_for_status(client, deployment["id"], {"deleting"})["status"] == "deleting"
    platform_of(app).jobs = ManualJobs(app)
    assert recover(app, platform_of(app).jobs) == {deployment["id"]: "destroy"}
    platform_of(app).jobs.run_pending()
    assert wait_for_status(client, deployment["id"])["status"] == "deleted"


def test_a_lease_is_renewed_only_by_its_holder(database_url, fake):
    app = app_on_fake_proxmox(database_url, fake, backend="manual")
    deployment_id = uuid.UUID(create_deployment(app.test_client())["id"])
    with app.app_context():
        assert lifecycle.take_lease(deployment_id, "a", 30)
        assert not lifecycle.take_lease(deployment_id, "b", 30)
        assert not lifecycle.renew_lease(deployment_id, "b", 30)
        assert lifecycle.renew_lease(deployment_id, "a", 30)
        lifecycle.release_lease(deployment_id, "a")
        assert not lifecycle.renew_lease(deployment_id, "a", 30)  # released: a late heartbeat cannot revive it
        assert lifecycle.take_lease(deployment_id, "b", 30)


def test_the_sweep_requeues_only_stale_unheld_deployments(database_url, fake):
    app = app_on_fake_proxmox(database_url, fake, backend="manual")
    client = app.test_client()
    stale, fresh, held = (uuid.UUID(create_deployment(client, name=n)["id"]) for n in ("stale", "fresh", "held"))
    platform_of(app).jobs.queue.clear()  # as if the messages were lost
    with app.app_context():
        for ident in (stale, held):
            db.session.get(Deployment, ident).updated_at = utcnow() - timedelta(minutes=10)
        db.session.commit()
        lifecycle.take_lease(held, "someone", 60)
    assert recover(app, platform_of(app).jobs, stale_after=300) == {str(stale): "provision"}


def test_reconcile_reports_the_guest_a_failed_cleanup_left(database_url, fake):
    app = app_on_fake_proxmox(database_url, fake, backend="manual")
    client = app.test_client()
    created = create_deployment(client)
    platform_of(app).jobs.run_pending()
    vmid = wait_for_status(client, created["id"])["vm_id"]
    with app.app_context():  # what _fail leaves when the destroy itself failed
        lifecycle.apply(uuid.UUID(created["id"]), lambda row: lifecycle.change_status(
            row, DeploymentStatus.FAILED, "start failed; guest not removed"))
    report = CliRunner().invoke(cli, ["reconcile", "--fix"], obj=app)
    assert report.exit_code == 0, report.output
    assert f"orphan guest lxc {vmid}" in report.output and "failed and the guest was left behind" in report.output
    assert guests_of(fake) == []
    assert wait_for_status(client, created["id"])["vm_id"] is None
