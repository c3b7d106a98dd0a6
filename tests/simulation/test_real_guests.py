"""The production deploy path end to end on real guests: the fake Proxmox creates Debian containers with
systemd and sshd, and the platform deploys into them over SSH (apt through the guests' proxy, the
unprivileged user, the systemd unit, the health check across the bridge), as it would on Proxmox."""
import os
import subprocess
import time

import paramiko
import pytest

from backend.simulation.realguests import RealGuestCluster
from tests.conftest import worker_number
from tests.deploy.conftest import Repos, flask_app
from tests.deploy.test_simulation import fetch, wait_release
from tests.jobs.conftest import guests_of, make_app, wait_for
from tests.simulation.test_containers import capable

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite"])
def engine_name(request):
    """One engine: what these tests are about is the guest, not the database (the other tests cover those)."""
    return request.param


def start_cluster(tmp_path_factory, block, runtimes):
    if not capable():
        if os.environ.get("CI"):
            pytest.fail("CI must run the real-guest tests: run as root with debootstrap and systemd-container")
        pytest.skip("real guests need root, debootstrap and systemd-nspawn")
    repos = Repos(tmp_path_factory.mktemp("github"))
    cluster = RealGuestCluster(tmp_path_factory.mktemp("cluster"), block, repos.base, runtimes=runtimes)
    repos.base.mkdir(parents=True, exist_ok=True)
    return cluster.start(), repos


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Guests from the image with the runtimes preinstalled (python3, git, node)."""
    made, repos = start_cluster(tmp_path_factory, 224 + worker_number() % 8, runtimes=True)
    yield made, repos
    made.close()
    assert made.host.leftovers() == []


@pytest.fixture
def platform(cluster, database_url, tmp_path):
    made, repos = cluster
    app = make_app(database_url, made.fake, settings=made.settings, **made.app_config(), DEPLOY_APPS=True,
                   SSH_KEY_PATH=str(tmp_path / "ssh" / "id_ed25519"), JOB_TIME_LIMIT=600, HEALTH_CHECK_TIMEOUT=60,
                   DEPLOY_COMMAND_TIMEOUT=300, JOB_LEASE_SECONDS=30)
    yield app, repos, made
    app.extensions["jobs"].wait_idle(120)
    app.extensions["jobs"].shutdown()
    made.fake.assert_no_violations()


def on_guest(app, address, command, user="root"):
    """(status, output) of command on a guest, with the platform's own key."""
    from backend.deploy import key_path
    from backend.deploy.keys import load_or_create_keypair

    pkey, _ = load_or_create_keypair(key_path(app))
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # nosec B507 - the test's own guest
    client.connect(address, username=user, pkey=pkey, timeout=10, allow_agent=False, look_for_keys=False)
    try:
        _, stdout, _ = client.exec_command(command, timeout=60)  # nosec B601 - the test's own commands
        output = stdout.read().decode()
        return stdout.channel.recv_exit_status(), output
    finally:
        client.close()


def serves(url, text, timeout=60):
    """True once url answers 200 with text (an app that boots with its guest takes a moment)."""
    deadline = time.monotonic() + timeout
    while fetch(url) != (200, text):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.3)
    return True


def create(client, **body):
    response = client.post("/api/deployments", json={"deployment_type": "lxc", "framework": "flask", **body})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["deployment"]


def test_a_flask_app_deploys_over_ssh_and_lives_through_power_actions_and_a_reboot(platform):
    app, repos, made = platform
    repos.make("hello-real", flask_app("v1"))
    client = app.test_client()
    created = create(client, name="hello-real", github_url=repos.url("hello-real"), health_check_path="/health",
                     env={"GREETING": "guests"})
    running = wait_for(client, created["id"], timeout=300)
    assert running["status"] == "running", running["error_message"]
    address = running["ip_address"]
    assert address.startswith(str(made.host.network.network_address)[:-1]) and running["url"].startswith("http://10.77.")
    assert fetch(running["url"]) == (200, "hello guests from v1")

    # What the deploy left on the guest, looked at over SSH: the unit, the unprivileged user, the private env file.
    status, output = on_guest(app, address, "systemctl is-enabled paas-app; systemctl is-active paas-app; "
                                            "id -u paas-app; stat -c %a /srv/paas/current/app.env; "
                                            "ps -o user= -C gunicorn | sort -u")
    enabled, active, uid, mode, *users = output.split()
    assert (status, enabled, active, mode) == (0, "enabled", "active", "600") and int(uid) > 0
    assert users == ["paas-app"]

    # Stop and start act on the container; restart reboots it, and the enabled unit brings the app back.
    for action, expected in (("stop", "stopped"), ("start", "running"), ("restart", "running")):
        assert client.post(f"/api/deployments/{created['id']}/actions/{action}").status_code == 202
        wait_for(client, created["id"], {expected, "failed"}, timeout=120)
        if expected == "stopped":
            assert fetch(running["url"])[0] is None
    assert wait_for(client, created["id"], {"running"})["status"] == "running"
    assert serves(running["url"], "hello guests from v1"), "the app did not come back after the reboot"

    # A new release, then delete: nothing of the guest remains on this machine.
    repos.commit("hello-real", flask_app("v2"))
    assert client.post(f"/api/deployments/{created['id']}/actions/redeploy", json={}).status_code == 202
    assert wait_release(client, created["id"], 2, timeout=300)["status"] == "live"
    assert fetch(running["url"]) == (200, "hello guests from v2")
    vmid = running["vm_id"]
    assert client.delete(f"/api/deployments/{created['id']}").status_code == 202
    assert wait_for(client, created["id"], {"deleted"}, timeout=120)["status"] == "deleted"
    assert vmid not in guests_of(made.fake)
    assert made.host.leftovers([f"g{vmid}"]) == []
    assert subprocess.run(["ip", "link", "show", f"pv-g{vmid}"], capture_output=True).returncode != 0
