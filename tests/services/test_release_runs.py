"""run_release(), the deploy step, on a FakeTransport; "the app" is a small HTTP server on loopback."""
import pytest

from backend.extensions import db
from backend.models import Deployment, DeploymentStatus
from backend.services.deployments import update_deployment
from backend.services.job_context import LeaseLost
from backend.services.lifecycle import apply, change_status
from backend.services.provisioning import provision
from backend.services.release_runs import run_release
from backend.services.releases import request_redeploy, update_env
from tests.services.conftest import SHA, events, fresh, log_lines, redeploy, releases

SECRET = "hunter2-s3cret-value"


def test_a_release_goes_live_when_the_app_answers_its_health_check(new_deployment, job, guest_of, app_server,
                                                                    loopback_guests, transports):
    ident = new_deployment(port=app_server.port, health_check_path="/healthz", env={"API_KEY": SECRET})
    guest = guest_of(ident)

    assert provision(job(ident), deploy_app=run_release) is DeploymentStatus.RUNNING

    row = fresh(ident)
    assert (row.live_release, row.served_port, row.ip_address) == (1, app_server.port, "127.0.0.1")
    assert row.url == f"http://127.0.0.1:{app_server.port}"
    status, commit, error, config = releases(ident)[1]
    assert (status, commit, error) == ("live", SHA, None)
    assert config["framework"] == "flask" and config["port"] == app_server.port
    assert config["start"].startswith(".venv/bin/gunicorn --bind 0.0.0.0:") and config["start"].endswith("app:app")
    assert app_server.paths == ["/healthz"]
    # Built in its own directory, then switched in and the service restarted on it.
    assert guest.current() == "releases/1"
    assert [c[:2] for c in guest.service_calls] == [("install", "paas-app"), ("restart", "paas-app")]
    assert guest.service_calls[-1][2] == "releases/1"
    venv, pip = guest.ran("python3", "-m", "venv")[0], guest.ran(".venv/bin/pip", "install")[0]
    assert venv.cwd == pip.cwd == "/srv/paas/releases/1/src" and venv.as_app_user and pip.as_app_user
    assert pip.env["PORT"] == str(app_server.port) and SECRET not in pip.env.values()
    clone = guest.ran("git", "clone")[0]
    assert clone.argv[-2:] == ["https://github.com/acme/shop-api", "/srv/paas/releases/1/src"]
    assert clone.env["GIT_TERMINAL_PROMPT"] == "0"
    # The user's variables reach the guest in the release's files only, never on a command line.
    assert guest.files["/srv/paas/releases/1/app.env"].decode().count(SECRET) == 1
    assert {u.path: u.mode for u in guest.uploads}["/srv/paas/releases/1/app.env"] == 0o600
    assert not any(SECRET in word for argv in guest.argvs() for word in argv)
    assert transports.opened[0].address == "127.0.0.1" and guest.closed == 1
    assert ("step", f"release 1 is live at http://127.0.0.1:{app_server.port}") in log_lines(ident, 1)
    assert f"release 1 ({SHA[:12]}) is live" in [m for _, _, m in events(ident)]


def test_a_release_whose_build_fails_is_recorded_failed_with_its_log_masked(new_deployment, job, guest_of,
                                                                           loopback_guests, proxmox):
    ident = new_deployment(env={"DATABASE_PASSWORD": SECRET})
    guest = guest_of(ident)
    guest.script(".venv/bin/pip", "install", exit_code=1, output=[
        "Collecting flask", f"ERROR: could not reach the index as admin:{SECRET}@pypi.internal"])

    assert provision(job(ident), deploy_app=run_release) is DeploymentStatus.FAILED

    row = fresh(ident)
    assert row.error_message.startswith("deploy failed: install requirements.txt exited with status 1; last lines:")
    assert "admin:********@pypi.internal" in row.error_message
    status, _, error, _ = releases(ident)[1]
    assert status == "failed" and error.startswith("install requirements.txt exited with status 1")
    lines = log_lines(ident, 1)
    assert ("out", "ERROR: could not reach the index as admin:********@pypi.internal") in lines
    assert lines[-1][0] == "error"
    assert not any(SECRET in line for _, line in lines)
    assert SECRET not in error and SECRET not in row.error_message
    assert not any(SECRET in message for _, _, message in events(ident))
    # Nothing served yet: the guest goes with the failure.
    assert proxmox.vmids() == [] and row.live_release is None
    assert guest.current() is None and guest.service_calls == []


def test_a_failing_second_release_switches_back_to_the_first(new_deployment, job, guest_of, app_server, dead_port,
                                                            loopback_guests, hooks, platform):
    ident = new_deployment(port=app_server.port)
    guest = guest_of(ident)
    assert provision(job(ident), deploy_app=run_release) is DeploymentStatus.RUNNING
    # Release 2 listens on a port where nothing answers, and its process exits at once.
    deployment = db.session.get(Deployment, ident)
    update_deployment(deployment, {"port": dead_port})
    release, kind = request_redeploy(db.session.get(Deployment, ident), proxmox=platform.proxmox)
    assert (release.version, kind) == (2, "provision")
    db.session.remove()
    guest.app_runs = lambda transport: transport.current() != "releases/2"
    guest.service_output = ["Traceback (most recent call last):", "OSError: [Errno 98] Address already in use"]

    assert provision(job(ident), deploy_app=run_release) is DeploymentStatus.RUNNING

    row = fresh(ident)
    assert row.status is DeploymentStatus.RUNNING and (row.live_release, row.served_port) == (1, app_server.port)
    found = releases(ident)
    assert found[1][0] == "live"
    assert found[2][0] == "failed"
    assert found[2][2].startswith(f"health check failed: GET / on port {dead_port} gave no answer: the app exited")
    assert "OSError: [Errno 98] Address already in use" in found[2][2]
    assert guest.current() == "releases/1"
    assert [(action, where) for action, _, where in guest.service_calls if action == "restart"] == \
        [("restart", "releases/1"), ("restart", "releases/2"), ("restart", "releases/1")]
    assert app_server.paths == ["/", "/"]  # release 1's check, then the check after switching back
    assert ("app", "OSError: [Errno 98] Address already in use") in log_lines(ident, 2)
    assert any(m.startswith("release 2 failed and release 1 still serves: health check failed")
               for _, _, m in events(ident))


def test_a_second_release_whose_build_fails_keeps_the_first_release_serving_and_the_deployment_running(
        new_deployment, job, guest_of, app_server, loopback_guests, proxmox, platform):
    ident = new_deployment(port=app_server.port)
    guest = guest_of(ident)
    assert provision(job(ident), deploy_app=run_release) is DeploymentStatus.RUNNING
    redeploy(ident, platform)
    guest.script(".venv/bin/pip", "install", exit_code=1, output=["ERROR: No matching distribution found"])

    # As on Heroku, a build that fails leaves the app as it was: running release 1, the failure on release 2.
    assert provision(job(ident), deploy_app=run_release) is DeploymentStatus.RUNNING

    row = fresh(ident)
    assert row.live_release == 1 and row.vm_id == 100 and proxmox.vmids() == [100]  # the guest stays
    status, _, error = releases(ident)[2][:3]
    assert status == "failed" and error.startswith("install requirements.txt exited with status 1")
    assert error.endswith("(release 1 still serves)") and guest.current() == "releases/1"
    assert [action for action, _, _ in guest.service_calls].count("restart") == 1  # release 1 never stopped


def test_a_guest_that_cannot_be_reached_fails_the_release_with_the_transport_words(new_deployment, job, transports,
                                                                                  loopback_guests, proxmox):
    from backend.deploy.transport import TransportError

    ident = new_deployment()
    transports.fail_next_open(TransportError("connection refused by 127.0.0.1:22"))

    assert provision(job(ident), deploy_app=run_release) is DeploymentStatus.FAILED

    assert fresh(ident).error_message == "deploy failed: connection refused by 127.0.0.1:22"
    assert releases(ident)[1][:3] == ("failed", None, "connection refused by 127.0.0.1:22")
    assert proxmox.vmids() == []


def test_a_delete_during_the_build_cancels_the_release_and_removes_the_guest(new_deployment, job, guest_of,
                                                                             loopback_guests, proxmox, hooks):
    ident = new_deployment()
    guest = guest_of(ident)

    def user_deletes(transport, argv):
        apply(ident, lambda row: change_status(row, DeploymentStatus.DELETING, "delete requested"))
    guest.script(".venv/bin/pip", "install", handler=user_deletes)

    assert provision(job(ident), deploy_app=run_release) is DeploymentStatus.DELETED

    assert fresh(ident).status is DeploymentStatus.DELETED and proxmox.vmids() == []
    assert releases(ident)[1][0] == "cancelled" and releases(ident)[1][2] == "the deployment was deleted"
    assert guest.ran(".venv/bin/pip") and not guest.ran("ln") and guest.service_calls == []  # nothing switched
    assert hooks.names() == ["destroying"]


def test_an_environment_change_redeploys_the_live_commit_with_the_new_variables(new_deployment, job, guest_of,
                                                                                app_server, loopback_guests, platform):
    ident = new_deployment(port=app_server.port, env={"API_KEY": "first-value"})
    guest = guest_of(ident)
    assert provision(job(ident), deploy_app=run_release) is DeploymentStatus.RUNNING

    release, kind = update_env(db.session.get(Deployment, ident), {"API_KEY": "second-value", "MODE": "blue"},
                               proxmox=platform.proxmox)
    assert (release.version, release.reason, release.requested_commit, kind) == (2, "env", SHA, "provision")
    db.session.remove()

    assert provision(job(ident), deploy_app=run_release) is DeploymentStatus.RUNNING

    found = releases(ident)
    assert (found[1][0], found[2][0], found[2][1]) == ("superseded", "live", SHA)
    assert fresh(ident).live_release == 2 and guest.current() == "releases/2"
    env = guest.files["/srv/paas/releases/2/app.env"].decode()
    assert "second-value" in env and "MODE" in env and "first-value" not in env
    second_clone = guest.ran("git", "clone")[1].argv
    assert "--depth" not in second_clone  # a whole branch, to check the commit out
    assert guest.ran("git", "-C", "/srv/paas/releases/2/src", "-c", "advice.detachedHead=false", "checkout",
                     "--detach", SHA)
    assert "/srv/paas/releases/1/src" in guest.dirs  # the previous release is kept beside the new one


def test_a_deployment_whose_first_release_failed_is_retried_on_a_new_guest(new_deployment, job, guest_of,
                                                                           app_server, loopback_guests, proxmox,
                                                                           platform):
    ident = new_deployment(port=app_server.port)
    guest = guest_of(ident)
    guest.script(".venv/bin/pip", "install", exit_code=1, output=["ERROR: No matching distribution found"])
    assert provision(job(ident), deploy_app=run_release) is DeploymentStatus.FAILED
    assert proxmox.vmids() == []

    release, _ = request_redeploy(db.session.get(Deployment, ident), proxmox=platform.proxmox)
    assert (release.version, release.reason) == (2, "retry")
    db.session.remove()
    assert fresh(ident).status is DeploymentStatus.PENDING
    guest.script(".venv/bin/pip", "install")  # the repository is fixed

    assert provision(job(ident), deploy_app=run_release) is DeploymentStatus.RUNNING

    row = fresh(ident)
    assert row.live_release == 2 and row.vm_id == 100 and proxmox.vmids() == [100]
    assert len(proxmox.calls_to("create_lxc")) == 2
    assert [status for status, *_ in releases(ident).values()] == ["live", "failed"]  # newest first


def test_a_release_run_cut_off_after_its_switch_is_redone_with_the_live_release_serving_meanwhile(
        new_deployment, job, guest_of, app_server, loopback_guests, platform):
    ident = new_deployment(port=app_server.port)
    guest = guest_of(ident)
    assert provision(job(ident), deploy_app=run_release) is DeploymentStatus.RUNNING
    request_redeploy(db.session.get(Deployment, ident), proxmox=platform.proxmox)
    db.session.remove()
    cut = []

    def worker_dies_once(transport):
        if transport.current() == "releases/2" and not cut:
            cut.append(True)
            raise LeaseLost()  # the worker stalled here and another run took the deployment over
        return True
    guest.app_runs = worker_dies_once
    with pytest.raises(LeaseLost):
        provision(job(ident), deploy_app=run_release)
    assert guest.current() == "releases/2" and releases(ident)[2][0] == "building"

    assert provision(job(ident), deploy_app=run_release) is DeploymentStatus.RUNNING

    assert [where for action, _, where in guest.service_calls if action == "restart"] == \
        ["releases/1", "releases/2", "releases/1", "releases/2"]
    found = releases(ident)
    assert (found[1][0], found[2][0]) == ("superseded", "live") and fresh(ident).live_release == 2
    assert sorted(found) == [1, 2]  # the same release was redone, not a new one made
