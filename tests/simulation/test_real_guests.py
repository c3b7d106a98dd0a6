"""The production deploy path end to end on real guests: the fake Proxmox creates Debian containers with
systemd and sshd, and the platform deploys into them over SSH (apt through the guests' proxy, the
unprivileged user, the systemd unit, the health check across the bridge), as it would on Proxmox."""
import dataclasses
import os
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from backend.platform import platform_of
from backend.simulation.realguests import RealGuestCluster
from tests.helpers.api import build_log, create_deployment, wait_for_release, wait_for_restore, wait_for_status
from tests.helpers.apps import app_on_fake_proxmox, guests_of
from tests.helpers.edge import APPS_DOMAIN, router_config, served
from tests.helpers.load import check_redeploys_lose_nothing
from tests.helpers.network import fetch
from tests.helpers.repos import BROKEN_APP, EXPRESS_APP, STATIC_SITE, Repos, data_app, example, flask_app
from tests.helpers.waiting import poll
from tests.simulation.test_containers import CLUSTER_BLOCKS, block, capable, ssh

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
    made, repos = start_cluster(tmp_path_factory, block(CLUSTER_BLOCKS), runtimes=True)
    yield made, repos
    made.close()
    assert made.host.leftovers() == []


def platform_on(cluster, database_url, tmp_path, **config):
    made, repos = cluster
    app = app_on_fake_proxmox(database_url, made.fake, settings=made.settings, **made.app_config(), DEPLOY_APPS=True,
                              SSH_KEY_PATH=str(tmp_path / "ssh" / "id_ed25519"), JOB_TIME_LIMIT=600,
                              HEALTH_CHECK_TIMEOUT=60, DEPLOY_COMMAND_TIMEOUT=300, JOB_LEASE_SECONDS=30,
                              SSH_CONNECT_TIMEOUT=60, **config)
    yield app, repos, made
    platform_of(app).jobs.wait_idle(120)
    platform_of(app).jobs.shutdown()
    # Each test starts from an empty cluster (its database hands out the same addresses again), even when it
    # failed half-way and left a guest behind.
    for name in list(made.host.guests):
        made.host.destroy(name)
    for vmid in guests_of(made.fake):
        del made.fake.guests[vmid]
    made.fake.assert_no_violations()


@pytest.fixture
def platform(cluster, database_url, tmp_path):
    yield from platform_on(cluster, database_url, tmp_path)


@pytest.fixture
def routed_platform(cluster, database_url, tmp_path, edge_caddy):
    """The platform behind this worker's Caddy on the host's loopback, which reaches the guests on their bridge."""
    yield from platform_on(cluster, database_url, tmp_path, **router_config(edge_caddy))


def on_guest(app, address, command, user="root"):
    """(status, output) of command on a guest, with the platform's own key."""
    from backend.bootstrap import key_path
    from backend.deploy.keys import load_or_create_keypair

    pkey, _ = load_or_create_keypair(key_path(app))
    return ssh(address, pkey, command, user=user)


def serves(url, text, timeout=60):
    """True once url answers 200 with text (an app that boots with its guest takes a moment)."""
    deadline = time.monotonic() + timeout
    while fetch(url) != (200, text):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.3)
    return True


def test_a_flask_app_deploys_over_ssh_and_lives_through_power_actions_and_a_reboot(platform):
    app, repos, made = platform
    repos.make("hello-real", flask_app("v1"))
    client = app.test_client()
    created = create_deployment(client, name="hello-real", github_url=repos.url("hello-real"),
                                health_check_path="/health", env={"GREETING": "guests"})
    running = wait_for_status(client, created["id"], timeout=300)
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
        wait_for_status(client, created["id"], {expected, "failed"}, timeout=120)
        if expected == "stopped":
            assert fetch(running["url"])[0] is None
    assert wait_for_status(client, created["id"], {"running"})["status"] == "running"
    assert serves(running["url"], "hello guests from v1"), "the app did not come back after the reboot"

    # Releases: a new commit goes live; a crashing one is switched back; a rollback; an env change.
    ident = created["id"]
    repos.commit("hello-real", flask_app("v2"))
    assert client.post(f"/api/deployments/{ident}/actions/redeploy", json={}).status_code == 202
    assert wait_for_release(client, ident, 2, timeout=300)["status"] == "live"
    assert fetch(running["url"]) == (200, "hello guests from v2")
    repos.commit("hello-real", BROKEN_APP)
    assert client.post(f"/api/deployments/{ident}/actions/redeploy", json={}).status_code == 202
    broken = wait_for_release(client, ident, 3, timeout=300)
    assert broken["status"] == "failed" and "broken on purpose" in broken["error_message"]
    assert fetch(running["url"]) == (200, "hello guests from v2")
    assert client.post(f"/api/deployments/{ident}/releases/1/rollback").status_code == 202
    assert wait_for_release(client, ident, 4, timeout=300)["status"] == "live"
    assert fetch(running["url"]) == (200, "hello guests from v1")
    assert client.patch(f"/api/deployments/{ident}/env", json={"GREETING": "moon"}).status_code == 202
    assert wait_for_release(client, ident, 5, timeout=300)["status"] == "live"
    assert fetch(running["url"]) == (200, "hello moon from v1")

    # Delete: nothing of the guest remains on this machine.
    vmid = running["vm_id"]
    assert client.delete(f"/api/deployments/{created['id']}").status_code == 202
    assert wait_for_status(client, created["id"], {"deleted"}, timeout=120)["status"] == "deleted"
    assert vmid not in guests_of(made.fake)
    assert made.host.leftovers([f"g{vmid}"]) == []
    assert subprocess.run(["ip", "link", "show", f"pv{made.host.block}-g{vmid}"], capture_output=True).returncode != 0


FASTAPI_APP = {
    "requirements.txt": "fastapi\n",
    "main.py": """
        from fastapi import FastAPI
        from fastapi.responses import PlainTextResponse

        app = FastAPI()


        @app.get("/", response_class=PlainTextResponse)
        def index():
            return "hello from fastapi"
    """,
}
DJANGO_APP = {
    "requirements.txt": "Django>=4.2,<6\n",
    "manage.py": """
        import os
        import sys

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site_conf.settings")
        from django.core.management import execute_from_command_line

        execute_from_command_line(sys.argv)
    """,
    "site_conf/__init__.py": "",
    "site_conf/settings.py": """
        from pathlib import Path

        BASE_DIR = Path(__file__).resolve().parent.parent
        SECRET_KEY = "tests-only"
        DEBUG = False
        ALLOWED_HOSTS = ["*"]
        ROOT_URLCONF = "site_conf.urls"
        INSTALLED_APPS = ["django.contrib.staticfiles"]
        MIDDLEWARE = []
        DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
        STATIC_URL = "static/"
        STATIC_ROOT = BASE_DIR / "staticfiles"
    """,
    "site_conf/urls.py": """
        from django.http import HttpResponse
        from django.urls import path

        urlpatterns = [path("", lambda request: HttpResponse("hello from django"))]
    """,
    "site_conf/wsgi.py": """
        import os

        from django.core.wsgi import get_wsgi_application

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site_conf.settings")
        application = get_wsgi_application()
    """,
}


def test_fastapi_django_express_and_a_static_site_each_run_on_a_guest_of_their_own(platform):
    app, repos, _ = platform
    client = app.test_client()
    samples = {"real-fastapi": (FASTAPI_APP, "fastapi", "hello from fastapi"),
               "real-django": (DJANGO_APP, "django", "hello from django"),
               "real-express": (EXPRESS_APP, "auto", "hello node from express"),
               "real-static": (STATIC_SITE, "auto", None)}
    made = {}
    for name, (files, framework, _) in samples.items():
        repos.make(name, files)
        made[name] = create_deployment(client, name=name, framework=framework, github_url=repos.url(name),
                                       env={"GREETING": "node"})["id"]
    for name, (_, _, text) in samples.items():
        running = wait_for_status(client, made[name], {"running", "failed"}, timeout=400)
        assert running["status"] == "running", (name, running["error_message"])
        status, body = fetch(running["url"])
        assert status == 200 and (text in body if text else "static site v1" in body), (name, body[:200])
    for ident in made.values():
        client.delete(f"/api/deployments/{ident}")
    for ident in made.values():
        assert wait_for_status(client, ident, {"deleted"}, timeout=120)["status"] == "deleted"


def test_a_guest_whose_host_key_changes_is_refused(platform):
    app, repos, _ = platform
    repos.make("real-pinned", flask_app("v1"))
    client = app.test_client()
    created = create_deployment(client, name="real-pinned", github_url=repos.url("real-pinned"))
    running = wait_for_status(client, created["id"], {"running", "failed"}, timeout=300)
    assert running["status"] == "running", running["error_message"]
    # Someone else answers at the guest's address now: a new host key.
    status, _ = on_guest(app, running["ip_address"], "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A -q "
                                                     "&& systemctl restart ssh")
    assert status == 0
    assert client.post(f"/api/deployments/{created['id']}/actions/redeploy", json={}).status_code == 202
    refused = wait_for_release(client, created["id"], 2, timeout=120)
    assert refused["status"] == "failed" and "host key" in refused["error_message"].lower()
    assert fetch(running["url"]) == (200, "hello nobody from v1")  # the app it had keeps serving
    client.delete(f"/api/deployments/{created['id']}")
    wait_for_status(client, created["id"], {"deleted"}, timeout=120)


def test_a_guest_that_never_answers_ssh_fails_plainly_and_leaves_no_guest(platform, monkeypatch):
    from backend.deploy import deployer

    app, repos, made = platform
    monkeypatch.setattr(deployer, "REACHABLE_SECONDS", 5)
    backend = made.fake.guest_backend
    create_lxc = backend.create_lxc

    def without_sshd(guest, keys):
        create_lxc(guest, keys)
        (made.host.guests[backend.name(guest)].root / "etc/systemd/system/ssh.service").symlink_to("/dev/null")

    monkeypatch.setattr(backend, "create_lxc", without_sshd)
    monkeypatch.setattr(made.host, "boot", lambda name, timeout=60: boot_without_waiting(made.host, name))
    repos.make("real-silent", flask_app("v1"))
    client = app.test_client()
    created = create_deployment(client, name="real-silent", github_url=repos.url("real-silent"))
    failed = wait_for_status(client, created["id"], {"running", "failed"}, timeout=120)
    assert failed["status"] == "failed" and "did not answer" in failed["error_message"]
    assert guests_of(made.fake) == [] and made.host.guests == {}


def boot_without_waiting(host, name):
    """ContainerHost.boot, but returning once systemd runs (this guest's sshd never will)."""
    import backend.simulation.containers.host as container_host  # where ContainerHost.boot looks _answers up

    real_answers = container_host._answers
    container_host._answers = lambda address, port: True
    try:
        return type(host).boot(host, name)
    finally:
        container_host._answers = real_answers


def test_a_build_that_runs_out_of_time_fails_and_leaves_no_guest(platform):
    app, repos, made = platform
    collaborators = platform_of(app)
    collaborators.deploy_limits = dataclasses.replace(collaborators.deploy_limits, command_timeout=5)
    repos.make("real-slow", flask_app("v1"))
    client = app.test_client()
    created = create_deployment(client, name="real-slow", github_url=repos.url("real-slow"), build_command="sleep 60")
    failed = wait_for_status(client, created["id"], {"running", "failed"}, timeout=300)
    assert failed["status"] == "failed" and "ran past its 5 s limit" in failed["error_message"], failed["error_message"]
    assert guests_of(made.fake) == [] and made.host.guests == {}


def test_a_vm_deploys_as_its_cloud_init_user_with_sudo(platform):
    app, repos, made = platform
    repos.make("real-vm", flask_app("v1"))
    client = app.test_client()
    created = create_deployment(client, name="real-vm", deployment_type="vm", github_url=repos.url("real-vm"))
    running = wait_for_status(client, created["id"], {"running", "failed"}, timeout=300)
    assert running["status"] == "running", running["error_message"]
    assert fetch(running["url"]) == (200, "hello nobody from v1")
    status, output = on_guest(app, running["ip_address"], "sudo -n systemctl is-active paas-app", user="paas")
    assert (status, output.strip()) == (0, "active")
    client.delete(f"/api/deployments/{created['id']}")
    assert wait_for_status(client, created["id"], {"deleted"}, timeout=120)["status"] == "deleted"
    assert made.host.guests == {}


def test_real_layouts_release_phase_workers_and_the_build_cache_on_guests(platform):
    """The samples of each layout on real guests: a factory package initialised by its release command, a Procfile
    worker restarted by systemd after it crashes, an Express build whose node_modules the next release reuses."""
    app, repos, _ = platform
    client = app.test_client()
    samples = {"real-notes": ("flask-factory", {"release_command": "flask --app notes init-db"}),
               "real-worker": ("procfile-worker", {}),
               "real-built": ("express-build", {})}
    made = {}
    for name, (sample, extra) in samples.items():
        repos.make(name, example(sample))
        made[name] = create_deployment(client, name=name, framework="auto", github_url=repos.url(name),
                                       health_check_path="/health", **extra)["id"]
    running = {}
    for name, ident in made.items():
        running[name] = wait_for_status(client, ident, {"running", "failed"}, timeout=400)
        assert running[name]["status"] == "running", (name, running[name]["error_message"])

    assert fetch(running["real-notes"]["url"]) == (200, "1 notes: welcome")

    # The worker runs as the app's user under its own unit; systemd restarted it after its first start crashed.
    worker = running["real-worker"]
    poll(lambda: serves_matching(worker["url"], "migrated at", "heartbeat: missing"), timeout=60, interval=0.5)
    answer = client.get(f"/api/deployments/{worker['id']}/processes")
    assert answer.status_code == 200, answer.get_json()
    processes = {p["name"]: p for p in answer.get_json()["processes"]}
    assert processes["worker"]["state"] == "running" and processes["worker"]["restarts"] >= 1, processes
    assert processes["web"]["state"] == "running"
    status, output = on_guest(app, worker["ip_address"], "systemctl is-enabled paas-app-worker; "
                                                         "ps -o user= -C python | sort -u")
    assert status == 0 and output.split() == ["enabled", "paas-app"], output
    worker_log = client.get(f"/api/deployments/{worker['id']}/logs/runtime?process=worker").get_data(as_text=True)
    assert "crashing on purpose" in worker_log and "worker: beat" in worker_log

    # A redeploy with the same dependencies reuses node_modules.
    built = running["real-built"]
    repos.commit("real-built", {"build.js": example("express-build")["build.js"] + "// a change\n"})
    assert client.post(f"/api/deployments/{built['id']}/actions/redeploy", json={}).status_code == 202
    assert wait_for_release(client, built["id"], 2, timeout=300)["status"] == "live"
    assert "reusing its node_modules" in build_log(client, built["id"], release=2)
    assert fetch(built["url"]) == (200, "hello nobody from a built express app")

    for ident in made.values():
        client.delete(f"/api/deployments/{ident}")
    for ident in made.values():
        assert wait_for_status(client, ident, {"deleted"}, timeout=120)["status"] == "deleted"


def serves_matching(url, wanted, unwanted):
    """Whether url answers 200 with wanted and without unwanted in its body."""
    status, body = fetch(url)
    return status == 200 and wanted in body and unwanted not in body


INJECTED = ("id -un > whoami; pwd > where; touch /etc/paas-pwned /srv/paas/paas-pwned /root/paas-pwned "
            "2>/dev/null; echo $(touch /usr/paas-pwned) `touch /var/paas-pwned`; true")


def test_payloads_through_the_release_command_and_procfile_run_as_the_app_user_inside_its_directory(platform):
    app, repos, _ = platform
    client = app.test_client()
    files = flask_app("v1")
    files["Procfile"] = ("web: gunicorn --bind \"$HOST:$PORT\" app:app\n"
                         "worker: touch /etc/paas-pwned-worker; id -un > worker-whoami; exec sleep 300\n")
    repos.make("real-inject", files)
    created = create_deployment(client, name="real-inject", github_url=repos.url("real-inject"),
                                release_command=INJECTED, env={"PAYLOAD": "$(touch /etc/paas-pwned-env)"})
    running = wait_for_status(client, created["id"], {"running", "failed"}, timeout=300)
    assert running["status"] == "running", running["error_message"]
    status, output = on_guest(app, running["ip_address"],
                              "cd /srv/paas/current/src && cat whoami where && sleep 1 && cat worker-whoami; "
                              "ls /etc/paas-pwned* /srv/paas/paas-pwned /root/paas-pwned /usr/paas-pwned "
                              "/var/paas-pwned 2>&1 | grep -vc 'No such file'; stat -c %U /srv/paas /srv/paas/releases")
    lines = output.split()
    assert lines[:3] == ["paas-app", "/srv/paas/releases/1/src", "paas-app"], output
    assert lines[3] == "0", output  # none of the files outside the app's directory was made
    assert lines[4:] == ["root", "root"]  # the app's user cannot write beside its releases
    client.delete(f"/api/deployments/{created['id']}")
    assert wait_for_status(client, created["id"], {"deleted"}, timeout=120)["status"] == "deleted"


def test_redeploys_through_the_router_lose_no_request_on_a_real_guest(routed_platform, edge_caddy):
    app, repos, made = routed_platform
    repos.make("steady-real", flask_app("v1"))
    client = app.test_client()
    ident = create_deployment(client, name="steady-real", github_url=repos.url("steady-real"),
                              health_check_path="/health", env={"GREETING": "edge"})["id"]
    running = wait_for_status(client, ident, timeout=300)
    assert running["status"] == "running", running["error_message"]
    assert running["url"] == f"https://steady-real.{APPS_DOMAIN}:{edge_caddy.https_port}"
    host = f"steady-real.{APPS_DOMAIN}"
    assert served(edge_caddy, host) == (200, "hello edge from v1")

    check_redeploys_lose_nothing(client, ident, repos, "steady-real", "edge",
                                 lambda: served(edge_caddy, host, tls_wait=0), timeout=300)
    # On the guest: the app's unit serves release 2, and no unit of the failed one is left.
    status, output = on_guest(app, running["ip_address"], "readlink /srv/paas/current; systemctl is-active paas-app; "
                              "systemctl list-units --all --no-legend 'paas-app--next*' | wc -l")
    assert (status, output.split()) == (0, ["releases/2", "active", "0"])


def test_a_snapshot_brings_back_code_and_data_and_a_backup_restores_on_the_other_node(platform):
    app, repos, made = platform
    client = app.test_client()
    repos.make("keeper", data_app("v1"))
    created = create_deployment(client, name="keeper", github_url=repos.url("keeper"), health_check_path="/health",
                                snapshot_before_release=True)
    ident = created["id"]
    running = wait_for_status(client, ident, timeout=300)
    assert running["status"] == "running", running["error_message"]
    url = running["url"]
    assert post(url + "/value", "one") == 200 and fetch(url) == (200, "v1 one")

    # Release 2 changes the code, then the data; the snapshot taken before it holds release 1 and "one".
    repos.commit("keeper", data_app("v2"))
    assert client.post(f"/api/deployments/{ident}/actions/redeploy", json={}).status_code == 202
    assert wait_for_release(client, ident, 2, timeout=300)["status"] == "live"
    assert post(url + "/value", "two") == 200 and fetch(url) == (200, "v2 two")
    status, output = on_guest(app, running["ip_address"], "touch /srv/paas/data/after-snapshot; echo done")
    assert status == 0

    assert client.post(f"/api/deployments/{ident}/releases/1/restore").status_code == 202
    restored = wait_for_restore(client, ident, 1, timeout=300)
    assert restored["status"] == "running" and restored["live_release"] == 1, restored["error_message"]
    assert serves(url, "v1 one"), fetch(url)
    status, output = on_guest(app, running["ip_address"], "ls /srv/paas/data")
    assert (status, output.split()) == (0, ["value.txt"])  # what was written after the snapshot is gone

    # A backup, restored into a new deployment on the other node: the same code and data, its own address.
    backup = client.post(f"/api/deployments/{ident}/backups").get_json()["backup"]
    done = poll(lambda: next((b for b in client.get(f"/api/deployments/{ident}/backups").get_json()["backups"]
                              if b["id"] == backup["id"] and b["state"] != "running"), None), timeout=300,
                interval=0.5)
    assert done["state"] == "ok" and done["size"] > 0, done
    answer = client.post(f"/api/deployments/{ident}/backups/{backup['id']}/restore",
                         json={"name": "keeper-copy", "node": "pve2"})
    assert answer.status_code == 202, answer.get_json()
    copy = wait_for_status(client, answer.get_json()["deployment"]["id"], {"running", "failed"}, timeout=300)
    assert copy["status"] == "running", copy["error_message"]
    assert copy["node"] == "pve2" and copy["ip_address"] != running["ip_address"] and copy["vm_id"] != running["vm_id"]
    assert serves(copy["url"], "v1 one"), fetch(copy["url"])
    [release] = client.get(f"/api/deployments/{copy['id']}/releases").get_json()["releases"]
    assert (release["reason"], release["status"], release["version"]) == ("restore", "live", 1)
    # Its data is its own from now on, and its next release is built as any other's (onto the same files).
    assert post(copy["url"] + "/value", "three") == 200 and fetch(url) == (200, "v1 one")
    assert client.post(f"/api/deployments/{copy['id']}/actions/redeploy", json={}).status_code == 202
    assert wait_for_release(client, copy["id"], 2, timeout=300)["status"] == "live"
    assert serves(copy["url"], "v2 three"), fetch(copy["url"])


def post(url, body):
    """The status of POST body to url."""
    request = urllib.request.Request(url, data=body.encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
