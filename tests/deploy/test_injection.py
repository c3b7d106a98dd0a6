"""Hostile input through every field: refused at the API, or carried as inert data to the guest."""
import uuid
from pathlib import Path

import pytest

from backend.deploy.deployer import Deployer, ReleaseSpec
from backend.deploy.local import LocalTransport
from backend.models import Deployment
from backend.services.job_context import JobContext
from backend.services.release_runs import ReleaseLogWriter
from tests.helpers.api import (
    build_log,
    create_deployment,
    deployment_payload,
    releases_of,
    wait_for_release,
    wait_for_status,
)
from tests.helpers.network import fetch
from tests.helpers.repos import STATIC_SITE, flask_app

pytestmark = pytest.mark.slow  # real git, pip, npm, gunicorn, sshd or Celery processes

PAYLOADS = ["$(touch /tmp/paas-pwned)", "`touch /tmp/paas-pwned`", "x; touch /tmp/paas-pwned",
            "x && touch /tmp/paas-pwned", "x | touch /tmp/paas-pwned", "x\ntouch /tmp/paas-pwned",
            "x'y", 'x"y', "--upload-pack=touch /tmp/paas-pwned", "-x"]
BAD_URLS = ["https://github.com/acme/x;id", "https://github.com/acme/$(id)", "https://github.com/acme/`id`",
            "--upload-pack=touch /tmp/paas-pwned", "https://github.com/acme/x --upload-pack=y",
            "ext::sh -c touch% /tmp/paas-pwned", "file:///etc/passwd", "http://github.com/acme/x",
            "git@github.com:acme/x.git", "https://github.com/acme/x\n", "https://evil.example/acme/x",
            "https://github.com.evil.example/acme/x", "https://github.com/acme/x?upload-pack=y"]


@pytest.mark.parametrize("field", ["name", "branch", "framework", "github_url", "build_command",
                                   "start_command", "release_command", "health_check_path"])
def test_create_refuses_payloads_in_every_field(client, field):
    values = BAD_URLS if field == "github_url" else PAYLOADS
    for value in values:
        if field.endswith("_command") and "\n" not in value:
            # A one-line command is the user's own code for their guest, run by its shell as the app's user
            # (tests/simulation/test_real_guests.py shows where such payloads end up).
            continue
        response = client.post("/api/deployments", json=deployment_payload(**{field: value}))
        assert response.status_code == 422, (field, value, response.get_json())
        assert field in response.get_json()["error"]["fields"], response.get_json()
    assert Deployment.count_all() == 0


def test_env_keys_and_values_are_checked(client):
    for key in ["A B", "$(id)", "1X", "X;Y", "X=Y", "-X", "X\n", "PATH", "PORT", ""]:
        response = client.post("/api/deployments", json=deployment_payload(env={key: "v"}))
        assert response.status_code == 422, key
    for value in ["a\nb", "a\rb", "a\0b"]:
        response = client.post("/api/deployments", json=deployment_payload(env={"KEY": value}))
        assert response.status_code == 422 and "env.KEY" in response.get_json()["error"]["fields"]
    assert client.post("/api/deployments", json=deployment_payload(env={"KEY": 5})).status_code == 422
    assert Deployment.count_all() == 0


def test_redeploy_and_rollback_refuse_payloads(client):
    created = client.post("/api/deployments", json=deployment_payload()).get_json()["deployment"]
    for body in [{"branch": p} for p in PAYLOADS] + [{"commit": p} for p in PAYLOADS + ["HEAD", "main", "ABCDEF1"]]:
        response = client.post(f"/api/deployments/{created['id']}/actions/redeploy", json=body)
        assert response.status_code == 422, (body, response.get_json())
    assert client.post(f"/api/deployments/{created['id']}/actions/redeploy",
                       json={"branch": "main", "extra": 1}).status_code == 422
    for version in ["1;id", "$(id)", "-1", "99999999999"]:
        assert client.post(f"/api/deployments/{created['id']}/releases/{version}/rollback").status_code == 404
    response = client.patch(f"/api/deployments/{created['id']}/env", json={"$(id)": "x"})
    assert response.status_code == 422


def test_the_deployer_checks_again_before_running_git(app, tmp_path):
    """A value that slipped past the API (a database edited by hand) still never reaches git."""
    transport = LocalTransport(tmp_path / "guest", bind_host="127.0.0.1")
    control = JobContext(uuid.uuid4(), time_limit=60, watch_deletion=False)
    for url, branch, commit in [("--upload-pack=touch /tmp/paas-pwned", "main", None),
                                ("https://github.com/acme/x", "--upload-pack=touch", None),
                                ("https://github.com/acme/x", "main", "$(touch /tmp/paas-pwned)")]:
        release = ReleaseSpec(deployment_id=str(uuid.uuid4()), name="x", github_url=url, address="127.0.0.1",
                              version=1, branch=branch, commit=commit)
        deployer = Deployer(transport, release, ReleaseLogWriter(release.deployment_id, 1, lambda line: line),
                            control)
        deployer.sh(["mkdir", "-p", deployer.dir])
        with pytest.raises(ValueError):
            deployer.fetch()
    assert not Path("/tmp/paas-pwned").exists()
    assert not (tmp_path / "guest" / "releases" / "1" / "src").exists()


def test_payloads_reach_the_app_as_inert_data(sclient, repos, tmp_path):
    """Through the whole flow: hostile environment values and command words run nothing."""
    marker = tmp_path / "pwned"
    hostile = {f"V{i}": value.replace("/tmp/paas-pwned", str(marker)).replace("\n", " ")
               for i, value in enumerate(PAYLOADS)}
    hostile["QUOTES"] = "it's \"quoted\" \\ back$lash $HOME ${PATH} %n"
    files = flask_app()
    files["app.py"] = """
        import json, os
        from flask import Flask

        app = Flask(__name__)


        @app.get("/")
        def index():
            return json.dumps({k: v for k, v in os.environ.items() if k[0] == "V" or k == "QUOTES"})
    """
    repos.make("hostile", files)
    built = f"{marker}-build"
    build = (f"printf '%s\\n' '$(touch {built})' '`touch {built}`' '; touch {built}' "
             f"'&& touch {built}' '| touch {built}' '--upload-pack=touch {built}'")
    created = create_deployment(sclient, name="hostile", framework="flask", github_url=repos.url("hostile"),
                                env=hostile, build_command=build)
    running = wait_for_status(sclient, created["id"], {"running", "failed"}, timeout=240)
    assert running["status"] == "running", running["error_message"]
    import json

    status, body = fetch(running["url"])
    assert status == 200 and json.loads(body) == hostile
    log = build_log(sclient, created["id"])
    assert f"[1] `touch {built}`" in log and f"[1] ; touch {built}" in log and f"[1] $(touch {built})" in log
    assert not marker.exists() and not Path(built).exists() and not Path("/tmp/paas-pwned").exists()
    # Values are masked wherever they would appear in the log (the build printed none of them).
    assert all(value not in log for value in hostile.values() if len(value) >= 4)


def test_static_redeploy_of_another_branch_and_commit(sclient, repos):
    first = repos.make("site", STATIC_SITE)
    other = repos.commit("site", {"public/index.html": "feature\n"}, branch="feature/x-1.2_b")
    created = create_deployment(sclient, name="site", framework="static", github_url=repos.url("site"))
    running = wait_for_status(sclient, created["id"], {"running", "failed"}, timeout=120)
    assert running["status"] == "running", running["error_message"]
    answer = sclient.post(f"/api/deployments/{created['id']}/actions/redeploy", json={"branch": "feature/x-1.2_b"})
    assert answer.status_code == 202
    deadline_release = 2
    assert wait_for_release(sclient, created["id"], deadline_release)["commit_sha"] == other
    assert fetch(running["url"]) == (200, "feature\n")
    answer = sclient.post(f"/api/deployments/{created['id']}/actions/redeploy",
                          json={"branch": "main", "commit": first[:10]})
    assert answer.status_code == 202
    assert wait_for_release(sclient, created["id"], 3)["commit_sha"] == first
    assert fetch(running["url"]) == (200, STATIC_SITE["public/index.html"])
    assert [r["branch"] for r in releases_of(sclient, created["id"])] == ["main", "feature/x-1.2_b", "main"]
