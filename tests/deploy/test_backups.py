"""Snapshots around releases and backups, through the API on the fake Proxmox with sandbox guests (the fake keeps
their snapshots and archives as records; tests/simulation/test_real_guests.py restores real files)."""
import uuid
from datetime import timedelta

import pytest

from app import db
from backend.jobs.recovery import run_schedules
from backend.models import Backup, Deployment
from backend.models.types import utcnow
from backend.platform import platform_of
from tests.helpers.api import (
    create_deployment,
    error_of,
    events_of,
    releases_of,
    wait_for_release,
    wait_for_restore,
    wait_for_status,
)
from tests.helpers.repos import data_app

pytestmark = pytest.mark.slow  # real git, pip and gunicorn processes


def running_app(sclient, repos, name, **fields):
    repos.make(name, data_app("v1"))
    created = create_deployment(sclient, name=name, framework="flask", github_url=repos.url(name),
                                health_check_path="/health", **fields)
    running = wait_for_status(sclient, created["id"], {"running", "failed"}, timeout=240)
    assert running["status"] == "running", running["error_message"]
    return running


def backups_of(sclient, ident):
    answer = sclient.get(f"/api/deployments/{ident}/backups")
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def wait_for_backup(sclient, ident, backup_id, timeout=60):
    """The backup once its job has ended (retention included)."""
    assert platform_of(sclient.application).jobs.wait_idle(timeout)
    [found] = [b for b in backups_of(sclient, ident)["backups"] if b["id"] == backup_id]
    return found


def test_releases_snapshot_the_guest_first_and_keep_the_newest(sclient, sim, repos, fake):
    platform = platform_of(sim)
    platform.backups = type(platform.backups)(**{**platform.backups.__dict__, "snapshots_kept": 2})
    running = running_app(sclient, repos, "snappy", snapshot_before_release=True)
    ident, vmid = running["id"], running["vm_id"]
    assert running["snapshot_before_release"] is True
    for version in (2, 3, 4):
        assert sclient.post(f"/api/deployments/{ident}/actions/redeploy", json={}).status_code == 202
        assert wait_for_release(sclient, ident, version)["status"] == "live"
    snapshots = {r["version"]: r["snapshot"] for r in releases_of(sclient, ident)}
    # Each snapshot is of the release a new one replaced; the two newest are kept.
    assert snapshots == {4: None, 3: "paas_release_3", 2: "paas_release_2", 1: None}
    assert sorted(s for s in fake.guest(vmid).snapshots) == ["paas_release_2", "paas_release_3"]
    log = sclient.get(f"/api/deployments/{ident}/logs/text?release=4").get_data(as_text=True)
    assert "snapshot of the guest as release 3 left it (paas_release_3)" in log and "snapshot taken in" in log

    # Back to release 2's snapshot: a job rolls the guest back, checks the app, and the history says so.
    answer = sclient.post(f"/api/deployments/{ident}/releases/2/restore")
    assert answer.status_code == 202 and answer.get_json()["release"]["snapshot"] == "paas_release_2"
    restored = wait_for_restore(sclient, ident, 2, timeout=60)
    assert restored["status"] == "running" and restored["live_release"] == 2, restored["error_message"]
    assert [r["status"] for r in releases_of(sclient, ident)][:3] == ["superseded", "superseded", "live"]
    assert any("restored to release 2's snapshot paas_release_2" in (e["message"] or "")
               for e in events_of(sclient, ident))

    for version, code in (("1", "no_snapshot"), ("9", "not_found")):
        refused = sclient.post(f"/api/deployments/{ident}/releases/{version}/restore")
        assert error_of(refused)["code"] == code

    # A rollback Proxmox refuses changes nothing: an error event, the status and the live release as they were.
    fake.fail_task("vzrollback", error="can't rollback, 'paas_release_3' is not most recent snapshot on 'tank'")
    assert sclient.post(f"/api/deployments/{ident}/releases/3/restore").status_code == 202
    assert platform_of(sim).jobs.wait_idle(60)
    after = sclient.get(f"/api/deployments/{ident}").get_json()["deployment"]
    assert (after["status"], after["live_release"]) == ("running", 2)
    assert any(e["kind"] == "error" and "refused by Proxmox, nothing changed" in e["message"]
               and "not most recent snapshot" in e["message"] for e in events_of(sclient, ident))
    # ... and it is over: a redeploy may start.
    assert sclient.post(f"/api/deployments/{ident}/actions/redeploy", json={}).status_code == 202


def test_a_release_whose_snapshot_fails_does_not_run_and_the_live_one_serves(sclient, sim, repos, fake):
    running = running_app(sclient, repos, "nosnap", snapshot_before_release=True)
    ident = running["id"]
    fake.fail_task("vzsnapshot", error="snapshot feature for rootfs 'slow-lvm:vm-100-disk-0' is not available")
    assert sclient.post(f"/api/deployments/{ident}/actions/redeploy", json={}).status_code == 202
    failed = wait_for_release(sclient, ident, 2)
    assert failed["status"] == "failed" and "snapshot feature for rootfs 'slow-lvm:" in failed["error_message"]
    assert "(release 1 still serves)" in failed["error_message"]
    after = sclient.get(f"/api/deployments/{ident}").get_json()["deployment"]
    assert after["status"] == "running" and after["live_release"] == 1


def test_backups_are_made_listed_pruned_and_deleted(sclient, sim, repos, fake):
    running = running_app(sclient, repos, "saved", backup_keep_last=2, backup_keep_daily=0, backup_keep_weekly=0)
    ident = running["id"]
    made = []
    for _ in range(3):
        answer = sclient.post(f"/api/deployments/{ident}/backups")
        assert answer.status_code == 202 and answer.get_json()["backup"]["state"] == "running"
        done = wait_for_backup(sclient, ident, answer.get_json()["backup"]["id"])
        assert done["state"] == "ok" and done["volid"].startswith(f"backup:backup/vzdump-lxc-{running['vm_id']}-")
        assert done["size"] > 0 and done["release_version"] == 1 and done["error"] is None
        made.append(done["volid"])
    listed = backups_of(sclient, ident)
    # Retention keep-last=2: the oldest went, from the storage and from the list.
    assert listed["storage_checked"] is True
    assert [b["volid"] for b in listed["backups"]] == made[:0:-1]
    assert any("retention (keep-last=2, keep-daily=0, keep-weekly=0) removed 1" in (e["message"] or "")
               for e in events_of(sclient, ident))

    # An archive of the same VMID that does not say it is this deployment's (a deleted one's, say) is not adopted.
    fake.add_backup(running["vm_id"], storage="backup", notes="someone else")
    assert [b["volid"] for b in backups_of(sclient, ident)["backups"]] == made[:0:-1]

    newest = listed["backups"][0]
    assert sclient.delete(f"/api/deployments/{ident}/backups/{newest['id']}").status_code == 204
    assert [b["volid"] for b in backups_of(sclient, ident)["backups"]] == [made[1]]
    assert sclient.delete(f"/api/deployments/{ident}/backups/{uuid.uuid4()}").status_code == 404


def test_a_backup_that_fails_says_why_and_leaves_nothing(sclient, sim, repos, fake):
    running = running_app(sclient, repos, "unsaved")
    ident = running["id"]
    fake.fail_task("vzdump", error="vzdump: write error: No space left on device")
    backup = sclient.post(f"/api/deployments/{ident}/backups").get_json()["backup"]
    failed = wait_for_backup(sclient, ident, backup["id"])
    assert failed["state"] == "failed" and "No space left on device" in failed["error"] and failed["volid"] is None
    assert any("backup failed: " in (e["message"] or "") and "No space left" in e["message"]
               for e in events_of(sclient, ident))
    assert [b["state"] for b in backups_of(sclient, ident)["backups"]] == ["failed"]
    # A failed one is no obstacle to the next.
    again = sclient.post(f"/api/deployments/{ident}/backups").get_json()["backup"]
    assert wait_for_backup(sclient, ident, again["id"])["state"] == "ok"


def test_a_schedule_fires_once_across_processes(sclient, sim, repos):
    running = running_app(sclient, repos, "nightly")
    ident = running["id"]
    for bad in ("* * * * *", "0 3 * *", "61 3 * * *", "@reboot", "0,1 0 * * *", "0,30 0 * * *"):
        refused = sclient.patch(f"/api/deployments/{ident}", json={"backup_schedule": bad})
        assert refused.status_code == 422 and "backup_schedule" in error_of(refused)["fields"], bad
    assert sclient.patch(f"/api/deployments/{ident}", json={"backup_schedule": "0 3 * * *"}).status_code == 200
    jobs = platform_of(sim).jobs
    assert run_schedules(sim, jobs) == []  # it fires at 03:00, counted from now
    with sim.app_context():
        row = db.session.get(Deployment, uuid.UUID(ident))
        row.backup_scheduled_at = utcnow() - timedelta(days=1, hours=1)
        db.session.commit()
        db.session.remove()
    # Two processes look at the same moment: one claims the run.
    assert [str(i) for i in run_schedules(sim, jobs)] == [ident]
    assert run_schedules(sim, jobs) == []
    [backup] = backups_of(sclient, ident)["backups"]
    assert backup["trigger"] == "schedule"
    assert wait_for_backup(sclient, ident, backup["id"])["state"] == "ok"


def test_a_backup_restored_where_its_app_cannot_answer_leaves_no_guest(sclient, sim, repos, fake):
    running = running_app(sclient, repos, "origin")
    ident = running["id"]
    backup = sclient.post(f"/api/deployments/{ident}/backups").get_json()["backup"]
    assert wait_for_backup(sclient, ident, backup["id"])["state"] == "ok"
    guests = set(fake.guest_ids())
    taken = sclient.post(f"/api/deployments/{ident}/backups/{backup['id']}/restore", json={"name": "origin"})
    assert taken.status_code == 409 and error_of(taken)["code"] == "name_taken"
    unknown = sclient.post(f"/api/deployments/{ident}/backups/{backup['id']}/restore", json={"name": "x1", "y": 1})
    assert unknown.status_code == 422
    answer = sclient.post(f"/api/deployments/{ident}/backups/{backup['id']}/restore",
                          json={"name": "origin-copy", "node": "pve2"})
    assert answer.status_code == 202
    copy = answer.get_json()["deployment"]
    # A sandbox guest restored by the fake has no files: the app never answers, and nothing of it stays.
    failed = wait_for_status(sclient, copy["id"], {"running", "failed"}, timeout=120)
    assert failed["status"] == "failed" and "the restored app did not answer" in failed["error_message"]
    assert set(fake.guest_ids()) == guests


def test_a_backup_whose_job_never_ends_is_failed_by_the_scheduler(sclient, sim, repos):
    running = running_app(sclient, repos, "stuck")
    ident = running["id"]
    with sim.app_context():
        db.session.add(Backup(deployment_id=uuid.UUID(ident), state="running", storage="backup",
                              created_at=utcnow() - timedelta(hours=3)))
        db.session.commit()
        db.session.remove()
    run_schedules(sim, platform_of(sim).jobs)
    [backup] = backups_of(sclient, ident)["backups"]
    assert backup["state"] == "failed" and "its job ended without a result" in backup["error"]
    assert sclient.post(f"/api/deployments/{ident}/backups").status_code == 202  # no longer blocked
