"""Deployments become guests on the fake Proxmox through the API and the in-process job pool."""
import time

import pytest

from backend.platform import platform_of
from tests.helpers.api import create_deployment, events_of, status_chain, wait_for_status
from tests.helpers.apps import app_on_fake_proxmox, guests_of


def test_an_lxc_deployment_is_provisioned_acted_on_and_deleted(pclient, fake):
    created = create_deployment(pclient, name="shop-api", deployment_type="lxc", resources={"cores": 2, "memory": 1024})
    assert created["status"] == "pending"  # answered before any Proxmox work

    running = wait_for_status(pclient, created["id"])
    assert running["status"] == "running", running["error_message"]
    assert running["node"] in ("pve1", "pve2") and running["vm_id"] >= 100
    assert running["ip_address"] and running["deployed_at"]
    assert running["live"]["status"] == "running" and running["live"]["max_memory_mb"] == 1024
    assert status_chain(pclient, created["id"]) == ["pending", "provisioning", "deploying", "running"]

    guest = fake.guest(running["vm_id"])
    assert guest.kind == "lxc" and guest.status == "running"
    assert guest.config["hostname"] == "shop-api" and guest.config["cores"] == 2
    assert f"paas-{created['id']}" in guest.config["tags"].split(";")
    assert guest.config["unprivileged"] == 1

    log = pclient.get(f"/api/deployments/{created['id']}/history")
    assert log.status_code == 200 and log.mimetype == "text/plain"
    assert "extracting archive" in log.get_data(as_text=True)  # the Proxmox task's own log

    nodes = pclient.get("/api/nodes").get_json()["nodes"]
    assert {n["node"] for n in nodes} == {"pve1", "pve2"} and all(n["free_memory_mb"] > 0 for n in nodes)

    assert pclient.post(f"/api/deployments/{created['id']}/actions/stop").status_code == 202
    assert wait_for_status(pclient, created["id"], {"stopped"})["live"]["status"] == "stopped"
    assert fake.guest(running["vm_id"]).status == "stopped"
    assert pclient.post(f"/api/deployments/{created['id']}/actions/start").status_code == 202
    assert wait_for_status(pclient, created["id"], {"running"})["live"]["status"] == "running"
    assert pclient.post(f"/api/deployments/{created['id']}/actions/restart").status_code == 202
    deadline = time.monotonic() + 10
    while not any("restarted" in e["message"] for e in events_of(pclient, created["id"])):
        assert time.monotonic() < deadline, events_of(pclient, created["id"])
        time.sleep(0.05)

    deleted = pclient.delete(f"/api/deployments/{created['id']}")
    assert deleted.status_code == 202 and deleted.get_json()["deployment"]["status"] == "deleting"
    assert wait_for_status(pclient, created["id"], {"deleted"})["deleted_at"]
    assert guests_of(fake) == []
    assert pclient.delete(f"/api/deployments/{created['id']}").status_code == 200


def test_a_vm_deployment_is_cloned_configured_grown_and_started(pclient, fake):
    created = create_deployment(pclient, name="shop-vm", deployment_type="vm", resources={"cores": 4, "disk": 30})
    running = wait_for_status(pclient, created["id"])
    assert running["status"] == "running", running["error_message"]
    assert running["node"] == "pve1"  # where the template is
    guest = fake.guest(running["vm_id"])
    assert guest.kind == "qemu" and guest.status == "running" and guest.name == "shop-vm"
    assert guest.config["cores"] == 4 and str(guest.config["memory"]) == "2048"
    assert str(guest.config["agent"]).startswith("1") and guest.config["ciuser"] == "paas"
    assert "size=30G" in guest.config["scsi0"]
    assert "ssh-ed25519" in guest.config["sshkeys"].replace("%20", " ")
    assert f"paas-{created['id']}" in guest.config["tags"].split(";")
    kinds = [e["message"] for e in events_of(pclient, created["id"]) if e["kind"] == "task"]
    assert kinds and "cloning template 9000" in kinds[0]

    assert pclient.delete(f"/api/deployments/{created['id']}").status_code == 202
    wait_for_status(pclient, created["id"], {"deleted"})
    assert guests_of(fake) == []


@pytest.mark.parametrize("deployment_type,fault,step", [
    ("lxc", lambda fake: fake.fail_task("vzcreate", "unable to create CT - disk full"), "create failed"),
    ("vm", lambda fake: fake.fail_task("qmclone", "clone failed: storage error"), "clone failed"),
    ("vm", lambda fake: fake.fail_next("POST", r"/qemu/\d+/config$", status=400,
                                       reason="Parameter verification failed."), "configure failed"),
    ("vm", lambda fake: fake.fail_task("resize", "disk resize failed"), "configure failed"),
    ("lxc", lambda fake: fake.fail_task("vzstart", "startup for container failed"), "start failed"),
    ("vm", lambda fake: fake.fail_task("qmstart", "start failed: QEMU exited with code 1"), "start failed"),
    ("vm", lambda fake: setattr(fake, "agent_never_answers", True), "address failed"),
], ids=["lxc-create", "vm-clone", "vm-config", "vm-resize", "lxc-start", "vm-start", "vm-no-ip"])
def test_a_failing_step_fails_the_deployment_and_leaves_no_guest(pclient, fake, deployment_type, fault, step):
    fault(fake)
    created = create_deployment(pclient, deployment_type=deployment_type)
    failed = wait_for_status(pclient, created["id"])
    assert failed["status"] == "failed"
    assert failed["error_message"].startswith(step), failed["error_message"]
    assert failed["vm_id"] is None and failed["ip_address"] is None
    assert guests_of(fake) == []
    assert status_chain(pclient, created["id"])[-1] == "failed"
    # A failed deployment can still be deleted.
    assert pclient.delete(f"/api/deployments/{created['id']}").status_code == 202
    assert wait_for_status(pclient, created["id"], {"deleted"})["status"] == "deleted"


def test_the_error_message_carries_proxmoxs_own_words(pclient, fake):
    fake.fail_task("vzcreate", "unable to create CT 100 - no space left on device")
    failed = wait_for_status(pclient, create_deployment(pclient)["id"])
    assert "no space left on device" in failed["error_message"]


def test_no_node_with_room_fails_at_placement(pclient, fake):
    created = create_deployment(pclient, deployment_type="lxc", resources={"memory": 16384, "disk": 200})
    for node in ("pve1", "pve2"):
        fake.set_node_offline(node)
    failed = wait_for_status(pclient, created["id"])
    assert failed["error_message"].startswith("placement failed"), failed["error_message"]
    assert guests_of(fake) == []


def test_twenty_concurrent_creates_with_a_stuck_nextid_get_distinct_vmids(database_url, fake):
    app = app_on_fake_proxmox(database_url, fake, JOB_WORKERS=20)
    client = app.test_client()
    fake.nextid_fixed = 100
    try:
        ids = [create_deployment(client, name=f"app-{n:02d}")["id"] for n in range(20)]
        assert platform_of(app).jobs.wait_idle(120)
        finals = [wait_for_status(client, ident) for ident in ids]
        assert [d["status"] for d in finals] == ["running"] * 20, [d["error_message"] for d in finals]
        vmids = [d["vm_id"] for d in finals]
        assert len(set(vmids)) == 20
        assert guests_of(fake) == sorted(vmids)
        fake.assert_no_violations()
    finally:
        platform_of(app).jobs.shutdown()


@pytest.mark.parametrize("deployment_type,task", [("lxc", "vzcreate"), ("vm", "qmclone")])
def test_a_delete_during_provisioning_wins(pclient, papp, fake, deployment_type, task):
    # While it is created or cloned, a guest has neither name nor tags on the real server (nor on the fake).
    fake.task_durations = {task: 1.5}
    created = create_deployment(pclient, deployment_type=deployment_type)
    deadline = time.monotonic() + 10
    while not guests_of(fake):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert pclient.get(f"/api/deployments/{created['id']}").get_json()["deployment"]["status"] == "provisioning"
    response = pclient.delete(f"/api/deployments/{created['id']}")
    assert response.status_code == 202
    assert wait_for_status(pclient, created["id"], {"deleted"})["status"] == "deleted"
    assert platform_of(papp).jobs.wait_idle(30)  # every job has ended: none can bring the guest back
    assert guests_of(fake) == []
    assert wait_for_status(pclient, created["id"])["status"] == "deleted"


def test_a_delete_while_the_create_fails_ends_deleted(pclient, papp, fake):
    fake.task_durations = {"vzcreate": 1.0}
    fake.fail_task("vzcreate", "unable to create CT - disk full")
    created = create_deployment(pclient)
    deadline = time.monotonic() + 10
    while not guests_of(fake):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    pclient.delete(f"/api/deployments/{created['id']}")
    assert platform_of(papp).jobs.wait_idle(30)
    assert wait_for_status(pclient, created["id"])["status"] == "deleted"
    assert guests_of(fake) == []


def test_a_failing_destroy_ends_failed_and_a_second_delete_finishes(pclient, papp, fake):
    created = create_deployment(pclient)
    vmid = wait_for_status(pclient, created["id"])["vm_id"]
    fake.fail_next("DELETE", rf"/lxc/{vmid}$", status=500,
                   reason=f"can't lock file '/run/lock/lxc/pve-config-{vmid}.lock' - got timeout", times=20)
    pclient.delete(f"/api/deployments/{created['id']}")
    assert platform_of(papp).jobs.wait_idle(60)
    failed = wait_for_status(pclient, created["id"])
    assert failed["status"] == "failed", failed
    assert failed["error_message"].startswith("delete failed: can't lock file") and "delete it again" in \
        failed["error_message"]
    assert guests_of(fake) == [vmid]
    fake.reset_faults()
    assert pclient.delete(f"/api/deployments/{created['id']}").status_code == 202
    assert wait_for_status(pclient, created["id"], {"deleted"})["status"] == "deleted"
    assert guests_of(fake) == []


def test_actions_that_do_not_apply_are_409_and_unknown_ones_404(pclient, fake):
    created = create_deployment(pclient)
    wait_for_status(pclient, created["id"])
    response = pclient.post(f"/api/deployments/{created['id']}/actions/start")
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "invalid_state"
    assert pclient.post(f"/api/deployments/{created['id']}/actions/explode").status_code == 404
    pclient.delete(f"/api/deployments/{created['id']}")
    wait_for_status(pclient, created["id"], {"deleted"})
    assert pclient.post(f"/api/deployments/{created['id']}/actions/stop").status_code == 409


def test_a_job_past_its_time_limit_fails_and_cleans_up(database_url, fake):
    app = app_on_fake_proxmox(database_url, fake, JOB_TIME_LIMIT=2)
    client = app.test_client()
    fake.agent_ip_delay = 60  # the VM never gets its address in time
    try:
        failed = wait_for_status(client, create_deployment(client, deployment_type="vm")["id"])
        assert failed["status"] == "failed" and "time limit" in failed["error_message"]
        assert guests_of(fake) == []
    finally:
        platform_of(app).jobs.wait_idle(30)
        platform_of(app).jobs.shutdown()


def test_without_proxmox_a_create_is_503_and_stores_nothing(database_url, fake):
    from backend.models import Deployment
    app = app_on_fake_proxmox(database_url, fake, settings=None)
    platform_of(app).proxmox = None  # what services see: the cluster is gone
    client = app.test_client()
    try:
        response = client.post("/api/deployments", json={
            "name": "no-cluster", "deployment_type": "lxc", "framework": "flask",
            "github_url": "https://github.com/acme/no-cluster"})
        assert response.status_code == 503
        error = response.get_json()["error"]
        assert error["code"] == "proxmox_not_configured"
        assert "PROXMOX_HOST" in error["message"] and "guest" not in error["message"]
        with app.app_context():
            assert Deployment.count_all(include_deleted=True) == 0
        assert client.get("/api/nodes").status_code == 503
        assert client.get("/health").get_json()["proxmox"] == "not_configured"
    finally:
        platform_of(app).jobs.shutdown()


def test_a_pending_deployment_whose_cluster_went_away_fails_without_speaking_of_a_guest(database_url, fake):
    """Proxmox configured at create, gone by the time the job runs (the operator unset PROXMOX_HOST)."""
    app = app_on_fake_proxmox(database_url, fake, backend="manual")
    client = app.test_client()
    ident = create_deployment(client)["id"]
    platform_of(app).proxmox = None  # what services see: the cluster is gone
    platform_of(app).jobs.run_pending()
    failed = client.get(f"/api/deployments/{ident}").get_json()["deployment"]
    assert failed["status"] == "failed"
    assert "Proxmox is not configured" in failed["error_message"]
    assert "guest" not in failed["error_message"] and "reconcile" not in failed["error_message"]
    assert guests_of(fake) == []


def test_new_resources_of_a_stopped_deployment_are_applied_to_its_guest(pclient, fake):
    created = create_deployment(pclient, resources={"cores": 1, "memory": 512, "disk": 8})
    vmid = wait_for_status(pclient, created["id"])["vm_id"]
    pclient.post(f"/api/deployments/{created['id']}/actions/stop")
    wait_for_status(pclient, created["id"], {"stopped"})
    response = pclient.patch(f"/api/deployments/{created['id']}",
                             json={"resources": {"cores": 3, "memory": 2048, "disk": 12}})
    assert response.status_code == 200
    deadline = time.monotonic() + 10
    while not any(e["message"].startswith("resized") for e in events_of(pclient, created["id"])):
        assert time.monotonic() < deadline, events_of(pclient, created["id"])
        time.sleep(0.05)
    config = fake.guest(vmid).config
    assert config["cores"] == 3 and int(config["memory"]) == 2048 and "size=12G" in config["rootfs"]
    shrink = pclient.patch(f"/api/deployments/{created['id']}", json={"resources": {"disk": 10}})
    assert shrink.status_code == 422 and "resources.disk" in shrink.get_json()["error"]["fields"]
