"""End to end in simulation mode: API -> job -> fake Proxmox -> git clone -> install -> start ->
health check -> running -> redeploy -> rollback -> env change -> stop/start -> delete."""
import json
import shutil
import time
from pathlib import Path

import pytest

from backend.platform import platform_of
from tests.helpers.api import build_log, create_deployment, releases_of, wait_for_release, wait_for_status
from tests.helpers.apps import guests_of
from tests.helpers.network import fetch
from tests.helpers.repos import BROKEN_APP, EXPRESS_APP, STATIC_SITE, flask_app

pytestmark = pytest.mark.slow  # real git, pip, npm, gunicorn, sshd or Celery processes

SECRET = "s3cr3t-Value-42"


def test_flask_app_from_create_to_delete(sclient, sim, repos, fake):
    first = repos.make("hello-flask", flask_app("v1"))
    created = create_deployment(sclient, name="hello", framework="flask", github_url=repos.url("hello-flask"),
                                health_check_path="/health", env={"GREETING": "world", "API_TOKEN": SECRET})
    assert created["env"] == {"API_TOKEN": "********", "GREETING": "********"}
    ident = created["id"]

    running = wait_for_status(sclient, ident, {"running", "failed"}, timeout=240)
    assert running["status"] == "running", running["error_message"]
    assert running["url"].startswith("http://127.77.") and running["live_release"] == 1
    assert fetch(running["url"]) == (200, "hello world from v1")
    [v1] = releases_of(sclient, ident)
    assert v1["status"] == "live" and v1["commit_sha"] == first and v1["reason"] == "create"
    assert v1["config"]["framework"] == "flask" and "gunicorn" in v1["config"]["start"]
    log = build_log(sclient, ident, release=1)
    assert "git clone https://github.com/acme/hello-flask" in log and "Successfully installed" in log
    assert "health check: GET" in log and "answered 200" in log

    # The app runs from its own directory; its environment file is private.
    sandbox = Path(sim.config["SIMULATION_DIR"]) / "guests" / ident
    assert (sandbox / "current").resolve() == sandbox / "releases" / "1"
    assert (sandbox / "releases" / "1" / "app.env").stat().st_mode & 0o777 == 0o600
    assert not (sandbox / "releases" / "1" / "src" / ".git").exists()

    # Redeploy: a new commit goes live.
    second = repos.commit("hello-flask", flask_app("v2"))
    answer = sclient.post(f"/api/deployments/{ident}/actions/redeploy", json={})
    assert answer.status_code == 202 and answer.get_json()["release"]["version"] == 2
    assert wait_for_release(sclient, ident, 2)["status"] == "live"
    assert fetch(running["url"]) == (200, "hello world from v2")
    assert releases_of(sclient, ident)[1]["status"] == "superseded"
    assert releases_of(sclient, ident)[0]["commit_sha"] == second

    # A broken release is switched back: v2 keeps serving, the release says why.
    repos.commit("hello-flask", BROKEN_APP)
    assert sclient.post(f"/api/deployments/{ident}/actions/redeploy", json={}).status_code == 202
    broken = wait_for_release(sclient, ident, 3)
    assert broken["status"] == "failed" and "health check failed" in broken["error_message"]
    assert "broken on purpose" in broken["error_message"]
    after = sclient.get(f"/api/deployments/{ident}").get_json()["deployment"]
    assert after["status"] == "running" and after["live_release"] == 2
    assert fetch(running["url"]) == (200, "hello world from v2")

    # Rollback to release 1: its code and its config together.
    answer = sclient.post(f"/api/deployments/{ident}/releases/1/rollback")
    assert answer.status_code == 202 and answer.get_json()["release"]["rollback_of"] == 1
    rolled = wait_for_release(sclient, ident, 4)
    assert rolled["status"] == "live" and rolled["commit_sha"] == first and rolled["reason"] == "rollback"
    assert fetch(running["url"]) == (200, "hello world from v1")

    # An environment change makes a release of the same commit.
    answer = sclient.patch(f"/api/deployments/{ident}/env", json={"GREETING": "moon", "API_TOKEN": None})
    assert answer.status_code == 202 and answer.get_json()["env"] == {"GREETING": "********"}
    changed = wait_for_release(sclient, ident, 5)
    assert changed["status"] == "live" and changed["commit_sha"] == first and changed["reason"] == "env"
    assert fetch(running["url"]) == (200, "hello moon from v1")

    # Stop and start: the app follows its guest.
    assert sclient.post(f"/api/deployments/{ident}/actions/stop").status_code == 202
    assert wait_for_status(sclient, ident, {"stopped"})["url"] is None
    assert fetch(running["url"])[0] is None
    assert sclient.post(f"/api/deployments/{ident}/actions/start").status_code == 202
    wait_for_status(sclient, ident, {"running"})
    deadline = time.monotonic() + 20
    while fetch(running["url"])[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert fetch(running["url"]) == (200, "hello moon from v1")
    assert "Booting worker" in sclient.get(f"/api/deployments/{ident}/logs/runtime").get_data(as_text=True)

    # No response or log ever shows a value.
    everything = [build_log(sclient, ident), sclient.get(f"/api/deployments/{ident}/history").get_data(as_text=True),
                  json.dumps(sclient.get(f"/api/deployments/{ident}/events").get_json()),
                  json.dumps(sclient.get(f"/api/deployments/{ident}/releases").get_json()),
                  json.dumps(sclient.get(f"/api/deployments/{ident}").get_json())]
    assert not any(SECRET in text or "moon" in text for text in everything)

    # Delete: the guest, the app and its sandbox go.
    assert sclient.delete(f"/api/deployments/{ident}").status_code == 202
    wait_for_status(sclient, ident, {"deleted"})
    assert fetch(running["url"])[0] is None and not sandbox.exists() and guests_of(fake) == []


def test_static_site_is_detected_and_serves_only_its_directory(sclient, repos):
    repos.make("site", STATIC_SITE)
    created = create_deployment(sclient, name="site", framework="auto", github_url=repos.url("site"))
    running = wait_for_status(sclient, created["id"], {"running", "failed"}, timeout=120)
    assert running["status"] == "running", running["error_message"]
    assert running["url"].endswith(":8080")
    assert fetch(running["url"]) == (200, STATIC_SITE["public/index.html"])
    assert fetch(running["url"] + "/README.md")[0] == 404
    assert fetch(running["url"] + "/../app.env")[0] in (400, 404)
    [release] = releases_of(sclient, created["id"])
    assert release["config"]["framework"] == "static"


def test_a_failing_first_release_fails_with_its_log_and_leaves_nothing(sclient, sim, repos, fake):
    repos.make("site", STATIC_SITE)
    created = create_deployment(sclient, name="site", framework="static", github_url=repos.url("site"),
                                build_command="sh -c 'echo compiling the assets; exit 7'")
    failed = wait_for_status(sclient, created["id"], {"running", "failed"}, timeout=120)
    assert failed["status"] == "failed" and failed["url"] is None
    assert "exited with status 7" in failed["error_message"]
    assert "compiling the assets" in failed["error_message"]
    [release] = releases_of(sclient, created["id"])
    assert release["status"] == "failed"
    platform_of(sim).jobs.wait_idle(30)
    assert guests_of(fake) == []
    assert not (Path(sim.config["SIMULATION_DIR"]) / "guests" / created["id"]).exists()

    # Fixed: a redeploy of a failed deployment starts over on a new guest.
    assert sclient.patch(f"/api/deployments/{created['id']}", json={"build_command": None}).status_code == 200
    answer = sclient.post(f"/api/deployments/{created['id']}/actions/redeploy", json={})
    assert answer.status_code == 202 and answer.get_json()["release"]["reason"] == "retry"
    assert wait_for_status(sclient, created["id"], {"running", "failed"}, timeout=120)["status"] == "running"


def test_an_app_that_exits_fails_its_health_check_at_once(sclient, repos):
    repos.make("site", STATIC_SITE)
    created = create_deployment(sclient, name="site", framework="static", github_url=repos.url("site"),
                                start_command="python3 -c 'import sys; print(\"cannot bind\"); sys.exit(3)'")
    started = time.monotonic()
    failed = wait_for_status(sclient, created["id"], {"running", "failed"}, timeout=120)
    assert failed["status"] == "failed" and "the app exited" in failed["error_message"]
    assert "cannot bind" in failed["error_message"]
    assert time.monotonic() - started < 20  # not the whole HEALTH_CHECK_TIMEOUT


def test_log_stream_is_live_and_resumable(sclient, repos):
    repos.make("site", STATIC_SITE)
    created = create_deployment(sclient, name="site", framework="static", github_url=repos.url("site"))
    ident = created["id"]
    deadline = time.monotonic() + 30
    while not releases_of(sclient, ident):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    response = sclient.get(f"/api/deployments/{ident}/logs/stream", buffered=False)
    assert response.mimetype == "text/event-stream"
    text = "".join(chunk.decode() for chunk in response.response)
    ids = [int(line[4:]) for line in text.splitlines() if line.startswith("id: ")]
    assert ids == sorted(ids) and len(ids) >= 3
    assert text.rstrip().endswith('data: {"release": 1, "status": "live"}')
    assert "event: end" in text and "git clone" in text

    # Resuming from an id sends only what came after it.
    resumed = sclient.get(f"/api/deployments/{ident}/logs/stream",
                          headers={"Last-Event-ID": str(ids[1])}).get_data(as_text=True)
    assert [int(line[4:]) for line in resumed.splitlines() if line.startswith("id: ")] == ids[2:]

    # The JSON log pages by after=.
    page = sclient.get(f"/api/deployments/{ident}/logs?limit=2").get_json()
    assert [line["id"] for line in page["lines"]] == ids[:2] and page["next_after"] == ids[1]


@pytest.mark.skipif(shutil.which("npm") is None, reason="node and npm are not installed")
def test_express_app_with_npm_dependencies(sclient, repos):
    repos.make("hello-express", EXPRESS_APP)
    created = create_deployment(sclient, name="express", framework="auto", github_url=repos.url("hello-express"),
                                env={"GREETING": "node"})
    running = wait_for_status(sclient, created["id"], {"running", "failed"}, timeout=240)
    assert running["status"] == "running", running["error_message"]
    assert running["url"].endswith(":3000")
    assert fetch(running["url"]) == (200, "hello node from express")
    [release] = releases_of(sclient, created["id"])
    assert release["config"]["framework"] == "express" and release["config"]["start"] == "npm start"


def test_a_redeploy_that_breaks_in_the_transport_keeps_the_guest_and_the_app(sclient, sim, repos, fake, monkeypatch):
    """Not only failed builds: an unreachable guest or a bug in a later release never costs the guest."""
    from backend.deploy.transport import TransportError

    repos.make("site", STATIC_SITE)
    created = create_deployment(sclient, name="site", framework="static", github_url=repos.url("site"))
    running = wait_for_status(sclient, created["id"], {"running", "failed"}, timeout=120)
    assert running["status"] == "running", running["error_message"]
    transports = platform_of(sim).transports
    opener = transports.open

    def broken(target):
        transport = opener(target)

        def upload(*args, **kwargs):
            raise TransportError("connection reset by the guest")
        transport.upload = upload
        return transport

    monkeypatch.setattr(transports, "open", broken)
    assert sclient.post(f"/api/deployments/{created['id']}/actions/redeploy", json={}).status_code == 202
    failed = wait_for_release(sclient, created["id"], 2)
    assert failed["status"] == "failed" and "connection reset" in failed["error_message"]
    after = wait_for_status(sclient, created["id"], {"running", "failed"})
    assert after["vm_id"] == running["vm_id"] and guests_of(fake) == [running["vm_id"]]
    assert fetch(running["url"]) == (200, STATIC_SITE["public/index.html"])

    # A bug (any exception) while switching in: the previous release comes back.
    def buggy(target):
        transport = opener(target)

        def restart_service(name):
            raise RuntimeError("a bug")
        transport.restart_service = restart_service
        return transport

    monkeypatch.setattr(transports, "open", buggy)
    assert sclient.post(f"/api/deployments/{created['id']}/actions/redeploy", json={}).status_code == 202
    assert wait_for_release(sclient, created["id"], 3)["status"] == "failed"
    monkeypatch.setattr(transports, "open", opener)
    assert guests_of(fake) == [running["vm_id"]]

    # Delete: nothing is left marked live.
    sclient.delete(f"/api/deployments/{created['id']}")
    deleted = wait_for_status(sclient, created["id"], {"deleted"})
    assert deleted["live_release"] is None
    assert "live" not in {r["status"] for r in releases_of(sclient, created["id"])}
