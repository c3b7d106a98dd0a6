"""Jobs left mid-way are resumed, a second run carries on with the guest of the first, and reconcile."""
import time
import uuid

import pytest
from click.testing import CliRunner

from backend.extensions import db
from backend.jobs.runner import Retry, execute
from backend.models import Deployment, DeploymentStatus
from backend.platform import platform_of
from backend.services import lifecycle
from manage_db import cli
from tests.helpers.api import create_deployment, wait_for_status
from tests.helpers.apps import app_on_fake_proxmox, guests_of


def add_row(app, name, status, deployment_type="lxc", vm_id=None, node=None):
    with app.app_context():
        row = Deployment(id=uuid.uuid4(), name=name, deployment_type=deployment_type, framework="flask",
                         github_url="https://github.com/acme/shop-api", resources={"cores": 1, "memory": 512,
                                                                                    "disk": 8},
                         tags=[], status=status, vm_id=vm_id, node=node)
        db.session.add(row)
        db.session.commit()
        return row.id


def lxc_config(name, deployment_id):
    return {"hostname": name, "cores": 1, "memory": 512, "swap": 512, "ostype": "debian", "arch": "amd64",
            "rootfs": "local-lvm:vm-{vmid}-disk-0,size=8G", "net0": "name=eth0,bridge=vmbr0,ip=dhcp",
            "tags": f"paas;paas-{deployment_id}"}


def add_lxc(fake, vmid, name, deployment_id, status="stopped"):
    config = lxc_config(name, deployment_id)
    config["rootfs"] = config["rootfs"].format(vmid=vmid)
    fake.add_guest(vmid, "lxc", node="pve1", config=config, status=status)


def test_starting_the_pool_resumes_every_unfinished_deployment(papp, fake):
    fresh = add_row(papp, "fresh", DeploymentStatus.PENDING)
    cut_before_create = add_row(papp, "cut-early", DeploymentStatus.PROVISIONING)
    cut_after_create = add_row(papp, "cut-late", DeploymentStatus.PROVISIONING, vm_id=150, node="pve1")
    add_lxc(fake, 150, "cut-late", cut_after_create)
    being_deleted = add_row(papp, "leaving", DeploymentStatus.DELETING, vm_id=160, node="pve1")
    add_lxc(fake, 160, "leaving", being_deleted, status="running")
    done = add_row(papp, "done", DeploymentStatus.RUNNING)

    queued = platform_of(papp).jobs.start()
    assert set(queued) == {str(fresh), str(cut_before_create), str(cut_after_create), str(being_deleted)}
    assert str(done) not in queued
    assert platform_of(papp).jobs.wait_idle(60)

    client = papp.test_client()
    assert wait_for_status(client, str(fresh))["status"] == "running"
    assert wait_for_status(client, str(cut_before_create))["status"] == "running"
    resumed = wait_for_status(client, str(cut_after_create))
    assert resumed["status"] == "running" and resumed["vm_id"] == 150  # carried on with the guest it had
    assert wait_for_status(client, str(being_deleted))["status"] == "deleted"
    assert 160 not in guests_of(fake)
    assert len(guests_of(fake)) == 3
    tagged = [g.vmid for g in fake.guests.values() if f"paas-{cut_after_create}" in str(g.config.get("tags"))]
    assert tagged == [150]


def test_a_pool_started_before_the_schema_exists_says_so_in_one_line_and_resumes_once_it_does(
        fake, tmp_path, caplog, monkeypatch):
    """gunicorn may start before `flask db upgrade` has run: recovery waits for the tables, it does not crash."""
    import logging

    import backend.jobs.recovery as jobs_module
    from tests.helpers.database import build_schema

    monkeypatch.setattr(jobs_module, "RECOVERY_RETRY_SECONDS", 0.2)
    # No backing off here: building the schema may take seconds on a loaded machine, and the retry after it
    # must not be a long backoff away.
    monkeypatch.setattr(jobs_module, "RECOVERY_RETRY_MAX_SECONDS", 0.2)
    url = f"sqlite:///{tmp_path / 'not-yet.db'}"
    app = app_on_fake_proxmox(url, fake, backend="manual")
    jobs = platform_of(app).jobs
    try:
        with caplog.at_level(logging.WARNING, logger="backend.jobs"):
            assert jobs.start() == {}
        postponed = [r for r in caplog.records if r.getMessage().startswith("recovery postponed")]
        assert len(postponed) == 1 and postponed[0].exc_info is None
        assert "the database has no tables yet (run `flask db upgrade`)" in postponed[0].getMessage()
        assert "\n" not in postponed[0].getMessage()

        build_schema(url)
        waiting = add_row(app, "waiting", DeploymentStatus.PENDING)
        deadline = time.monotonic() + 60  # a bound against a hang, not a measure: retries come every 0.2 s
        while ("provision", waiting) not in jobs.queue:
            assert time.monotonic() < deadline, "recovery never came back once the schema existed"
            time.sleep(0.05)
        assert jobs.run_pending() == [DeploymentStatus.RUNNING]
    finally:
        jobs.shutdown()


def test_importing_wsgi_or_running_a_cli_command_starts_no_background_work(tmp_path):
    """Only a serving process starts jobs: the Flask CLI and gunicorn import wsgi.py, and nothing may run."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    # The job pool, its sweeper and recovery are the paas-* threads (Flask-Limiter's memory storage keeps a
    # timer of its own, which is not background work of ours).
    probe = ("import threading, wsgi; "
             "print([t.name for t in threading.enumerate() if t.name.startswith(('paas-', 'heartbeat-'))])")
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}", "APP_ENV": "development",
           "ENV_ENCRYPTION_KEY": "2fcIRJ7s1l0EA_lXnNzOlYjcJIzBxMnh9rQ-TZxoZ6w=", "PROXMOX_HOST": ""}
    result = subprocess.run([sys.executable, "-c", probe], cwd=root, env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert not (tmp_path / "none.db").exists(), "importing wsgi.py connected to the database"


def test_a_second_run_of_a_finished_job_changes_nothing(database_url, fake):
    app = app_on_fake_proxmox(database_url, fake, backend="manual")
    client = app.test_client()
    created = create_deployment(client)
    assert platform_of(app).jobs.run_pending() == [DeploymentStatus.RUNNING]
    before = wait_for_status(client, created["id"])
    assert execute(app, "provision", created["id"]) is DeploymentStatus.RUNNING
    after = wait_for_status(client, created["id"])
    assert after["vm_id"] == before["vm_id"] and after["version"] == before["version"]
    assert guests_of(fake) == [before["vm_id"]]


def test_a_job_waits_while_another_holds_the_lease(database_url, fake):
    app = app_on_fake_proxmox(database_url, fake, backend="manual", JOB_LEASE_SECONDS=30)
    client = app.test_client()
    created = create_deployment(client)
    deployment_id = uuid.UUID(created["id"])
    with app.app_context():
        assert lifecycle.take_lease(deployment_id, "another-worker", 30)
    with pytest.raises(Retry) as retry:
        execute(app, "provision", created["id"])
    assert 25 < retry.value.seconds <= 30
    assert guests_of(fake) == []
    with app.app_context():
        lifecycle.release_lease(deployment_id, "another-worker")
    assert execute(app, "provision", created["id"]) is DeploymentStatus.RUNNING


def test_reconcile_reports_then_fixes_orphans_and_vanished_guests(database_url, fake):
    app = app_on_fake_proxmox(database_url, fake, backend="manual")
    client = app.test_client()
    kept = create_deployment(client, name="kept")
    vanished = create_deployment(client, name="vanished")
    platform_of(app).jobs.run_pending()
    kept, vanished = wait_for_status(client, kept["id"]), wait_for_status(client, vanished["id"])
    del fake.guests[vanished["vm_id"]]  # destroyed behind the platform's back
    stranger = uuid.uuid4()
    add_lxc(fake, 300, "stray", stranger)  # a platform guest whose deployment the database does not know
    fake.add_guest(301, "lxc", node="pve1", config={"hostname": "not-ours", "memory": 512,
                                                    "rootfs": "local-lvm:vm-301-disk-0,size=4G"})

    report = CliRunner().invoke(cli, ["reconcile"], obj=app)
    assert report.exit_code == 1, report.output
    assert "orphan guest lxc 300 (stray)" in report.output and str(stranger) not in report.output.split("(")[0]
    assert f"deployment vanished ({vanished['id']}, running) has no guest" in report.output
    assert "lxc 301" not in report.output and "not-ours" not in report.output  # an untagged guest is not ours
    assert 300 in guests_of(fake)  # a report changes nothing

    fixed = CliRunner().invoke(cli, ["reconcile", "--fix"], obj=app)
    assert fixed.exit_code == 0, fixed.output
    assert "destroyed 1, marked 1" in fixed.output
    assert guests_of(fake) == sorted([kept["vm_id"], 301])
    failed = wait_for_status(client, vanished["id"])
    assert failed["status"] == "failed" and "gone from the cluster" in failed["error_message"]
    assert wait_for_status(client, kept["id"])["status"] == "running"

    clean = CliRunner().invoke(cli, ["reconcile"], obj=app)
    assert clean.exit_code == 0 and clean.output.startswith("0 orphaned guest(s), 0 deployment(s)")
    fake.assert_no_violations()
