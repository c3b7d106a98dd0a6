"""Real apps as they are, end to end in simulation: the user's commands in a shell, the release phase, Procfile
processes beside web, detection of real layouts, and the build cache. The samples are examples/<name>."""
import textwrap
from pathlib import Path

import pytest

from tests.helpers.api import build_log, create_deployment, releases_of, wait_for_release, wait_for_status
from tests.helpers.apps import guests_of
from tests.helpers.network import fetch
from tests.helpers.repos import example, flask_app
from tests.helpers.waiting import poll

pytestmark = pytest.mark.slow  # real git, pip, npm and gunicorn processes


def running(client, ident):
    deployment = wait_for_status(client, ident, {"running", "failed"}, timeout=240)
    assert deployment["status"] == "running", (deployment["error_message"], build_log(client, ident))
    return deployment


def test_a_flask_factory_package_from_pyproject_with_its_database_initialised_by_the_release_command(
        sclient, repos):
    repos.make("notes", example("flask-factory"))
    created = create_deployment(sclient, name="notes", framework="auto", github_url=repos.url("notes"),
                                health_check_path="/health", env={"FIRST_NOTE": "hello from the release phase"},
                                release_command="flask --app notes init-db && echo \"db ready ($FIRST_NOTE)\"")
    deployment = running(sclient, created["id"])

    assert fetch(deployment["url"]) == (200, "1 notes: hello from the release phase")
    log = build_log(sclient, created["id"], release=1)
    assert "framework flask: a Python project" in log or "framework flask: pyproject.toml" in log
    assert "notes:create_app()" in log and "install the project (pyproject.toml)" in log
    assert "==> release command" in log and "db ready (********)" in log  # the value is the app's secret
    [release] = releases_of(sclient, created["id"])
    assert release["config"]["release"].startswith("flask --app notes init-db")
    assert release["config"]["start"].endswith("'notes:create_app()'")


def test_a_src_layout_is_found_and_served_with_src_on_the_import_path(sclient, repos):
    repos.make("hello-src", example("flask-src"))
    created = create_deployment(sclient, name="hello-src", framework="auto", github_url=repos.url("hello-src"),
                                health_check_path="/health", env={"GREETING": "src"})
    deployment = running(sclient, created["id"])
    assert fetch(deployment["url"]) == (200, "hello src from a src layout")
    config = releases_of(sclient, created["id"])[0]["config"]
    assert "--pythonpath src" in config["start"] and config["start"].endswith("hello_src:app")


def test_a_procfile_with_a_release_phase_and_a_worker_that_crashes_once(sclient, sim, repos):
    repos.make("worker-app", example("procfile-worker"))
    created = create_deployment(sclient, name="worker-app", framework="auto", github_url=repos.url("worker-app"),
                                health_check_path="/health")
    ident = created["id"]
    deployment = running(sclient, ident)
    log = build_log(sclient, ident, release=1)
    assert "==> release command (Procfile)" in log and "migrations applied" in log
    assert "process worker: (re)started as paas-app-worker" in log

    # The worker crashed on its first start, was restarted, and beats; web shows what both left.
    def beating():
        status, body = fetch(deployment["url"])
        return status == 200 and "migrated at" in body and "heartbeat: missing" not in body
    poll(beating, timeout=30, interval=0.25)
    processes = sclient.get(f"/api/deployments/{ident}/processes").get_json()
    assert processes["release"] == 1
    by_name = {p["name"]: p for p in processes["processes"]}
    assert set(by_name) == {"web", "worker"}
    assert by_name["web"]["state"] == "running" and by_name["web"]["service"] == "paas-app"
    assert by_name["worker"]["state"] == "running" and by_name["worker"]["restarts"] >= 1
    assert by_name["worker"]["command"] == "python worker.py"

    worker_log = sclient.get(f"/api/deployments/{ident}/logs/runtime?process=worker&lines=50").get_data(as_text=True)
    assert "crashing on purpose on its first start" in worker_log and "worker: beat" in worker_log
    web_log = sclient.get(f"/api/deployments/{ident}/logs/runtime").get_data(as_text=True)
    assert "worker: beat" not in web_log
    unknown = sclient.get(f"/api/deployments/{ident}/logs/runtime?process=clock")
    assert unknown.status_code == 404 and "web, worker" in unknown.get_json()["error"]["message"]
    assert sclient.get(f"/api/deployments/{ident}/logs/runtime?process=..%2Fx").status_code == 422

    # Stop and start take the worker along; a release without the worker removes its unit.
    assert sclient.post(f"/api/deployments/{ident}/actions/stop").status_code == 202
    wait_for_status(sclient, ident, {"stopped"}, timeout=60)
    sandbox = Path(sim.config["SIMULATION_DIR"]) / "guests" / ident
    assert not (sandbox / ".services" / "paas-app-worker.pid").exists()
    assert sclient.post(f"/api/deployments/{ident}/actions/start").status_code == 202
    wait_for_status(sclient, ident, {"running"}, timeout=60)
    states = {p["name"]: p["state"] for p in
              sclient.get(f"/api/deployments/{ident}/processes").get_json()["processes"]}
    assert states == {"web": "running", "worker": "running"}

    repos.commit("worker-app", {"Procfile": "web: gunicorn --bind \"$HOST:$PORT\" app:app\n"})
    assert sclient.post(f"/api/deployments/{ident}/actions/redeploy", json={}).status_code == 202
    assert wait_for_release(sclient, ident, 2)["status"] == "live"
    assert not (sandbox / ".services" / "paas-app-worker.json").exists()
    assert [p["name"] for p in sclient.get(f"/api/deployments/{ident}/processes").get_json()["processes"]] == ["web"]


def test_a_failing_release_command_keeps_the_live_release_serving(sclient, repos):
    repos.make("hello-flask", flask_app("v1"))
    created = create_deployment(sclient, name="hello", framework="flask", github_url=repos.url("hello-flask"),
                                health_check_path="/health", env={"GREETING": "world"})
    ident = created["id"]
    deployment = running(sclient, ident)

    repos.commit("hello-flask", flask_app("v2"))
    changed = sclient.patch(f"/api/deployments/{ident}",
                            json={"release_command": "echo migrating && exit 7"})
    assert changed.status_code == 200, changed.get_json()
    assert sclient.post(f"/api/deployments/{ident}/actions/redeploy", json={}).status_code == 202
    failed = wait_for_release(sclient, ident, 2)
    assert failed["status"] == "failed" and "release command exited with status 7" in failed["error_message"]
    assert "migrating" in failed["error_message"]
    after = wait_for_status(sclient, ident, {"running", "failed"}, timeout=60)
    assert after["status"] == "running" and after["live_release"] == 1
    assert fetch(deployment["url"]) == (200, "hello world from v1")


def test_commands_run_in_a_shell_with_operators_pipes_and_quotes(sclient, repos):
    files = flask_app("v1")
    files["app.py"] = (textwrap.dedent(files["app.py"])
                       + '\n\n@app.get("/built")\ndef built():\n    return open("built.txt").read()\n')
    repos.make("shell-app", files)
    created = create_deployment(
        sclient, name="shell-app", framework="flask", github_url=repos.url("shell-app"), health_check_path="/health",
        build_command="echo \"it's built; $GREETING\" | tr a-z A-Z > built.txt && test -s built.txt || exit 1",
        start_command="cd . && exec gunicorn --bind \"$HOST:$PORT\" 'app:app'", env={"GREETING": "quoted"})
    deployment = running(sclient, created["id"])
    assert fetch(deployment["url"] + "/built") == (200, "IT'S BUILT; QUOTED\n")
    assert fetch(deployment["url"]) == (200, "hello quoted from v1")


def test_an_express_app_with_a_build_step_and_the_build_cache(sclient, repos):
    repos.make("built-express", example("express-build"))
    created = create_deployment(sclient, name="built-express", framework="auto",
                                github_url=repos.url("built-express"), health_check_path="/health",
                                env={"GREETING": "friends"})
    ident = created["id"]
    deployment = running(sclient, ident)
    assert fetch(deployment["url"]) == (200, "hello friends from a built express app")
    log = build_log(sclient, ident, release=1)
    assert "npm ci, from the lockfile" in log and "built dist/" in log
    assert "engines.node asks for node >=18: satisfied" in log

    # Code changes, dependencies do not: node_modules is reused, npm ci does not run.
    repos.commit("built-express", {"src/server.js": example("express-build")["src/server.js"].replace(
        "a built express app", "a rebuilt express app")})
    assert sclient.post(f"/api/deployments/{ident}/actions/redeploy", json={}).status_code == 202
    assert wait_for_release(sclient, ident, 2)["status"] == "live"
    assert fetch(deployment["url"]) == (200, "hello friends from a rebuilt express app")
    log = build_log(sclient, ident, release=2)
    assert "build cache: the dependencies are those of release 1; reusing its node_modules" in log
    assert "npm ci" not in log.split("build cache:")[1] and "built dist/" in log


def test_the_build_cache_reuses_a_virtualenv_only_while_the_dependencies_are_unchanged(sclient, sim, repos):
    repos.make("notes", example("flask-factory"))
    created = create_deployment(sclient, name="notes", framework="auto", github_url=repos.url("notes"),
                                health_check_path="/health", release_command="flask --app notes init-db")
    ident = created["id"]
    deployment = running(sclient, ident)

    # The package's code changes: the virtualenv is reused, and the project itself reinstalled from this release.
    files = example("flask-factory")
    repos.commit("notes", {"notes/__init__.py": files["notes/__init__.py"].replace(' notes: "', ' notes! "')})
    assert sclient.post(f"/api/deployments/{ident}/actions/redeploy", json={}).status_code == 202
    assert wait_for_release(sclient, ident, 2)["status"] == "live"
    assert fetch(deployment["url"]) == (200, "1 notes! welcome")
    log = build_log(sclient, ident, release=2)
    assert "reusing its .venv" in log and "install this release of the project" in log
    sandbox = Path(sim.config["SIMULATION_DIR"]) / "guests" / ident / "releases"
    assert str(sandbox / "2" / "src" / ".venv") in (sandbox / "2" / "src" / ".venv" / "bin" / "flask").read_text()

    # A dependency file changes: everything is installed again.
    repos.commit("notes", {"pyproject.toml": files["pyproject.toml"].replace('"flask>=3"', '"flask>=3", "click"')})
    assert sclient.post(f"/api/deployments/{ident}/actions/redeploy", json={}).status_code == 202
    assert wait_for_release(sclient, ident, 3)["status"] == "live"
    log = build_log(sclient, ident, release=3)
    assert "no earlier release on the guest has these dependencies" in log and "reusing" not in log


def test_a_runtime_version_the_guest_cannot_satisfy_fails_with_a_clear_error(sclient, repos, fake):
    files = {**flask_app("v1"), ".python-version": "3.99\n"}
    repos.make("future-python", files)
    created = create_deployment(sclient, name="future-python", framework="auto",
                                github_url=repos.url("future-python"))
    failed = wait_for_status(sclient, created["id"], {"running", "failed"}, timeout=120)
    assert failed["status"] == "failed"
    assert "the app asks for Python ==3.99.* (.python-version) but the guest has Python 3." in failed["error_message"]
    assert "use a guest template with that version or change .python-version" in failed["error_message"]
    assert guests_of(fake) == []  # the guest made for it is gone
