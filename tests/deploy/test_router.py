"""Apps by name over HTTPS through a real Caddy (Debian's package) on loopback, driven by the platform through its
admin API: names and custom domains, the redirect, routes that follow deletes and a Caddy restarted empty, and
redeploys under a constant 50 requests a second that lose none."""
import dataclasses
import json
from pathlib import Path

import pytest

from backend.jobs.recovery import sync_router
from backend.platform import platform_of
from manage_db import cli as manage_cli
from tests.deploy.conftest import simulation_app
from tests.helpers.api import create_deployment, releases_of, wait_for_status
from tests.helpers.edge import APPS_DOMAIN, http_get, https_get, router_config, served
from tests.helpers.load import check_redeploys_lose_nothing
from tests.helpers.network import fetch
from tests.helpers.repos import flask_app

pytestmark = pytest.mark.slow  # real git, pip, gunicorn and caddy processes

DOMAIN = APPS_DOMAIN


@pytest.fixture
def routed(database_url, fake, repos, tmp_path, edge_caddy):
    """Simulation mode (sandbox guests, in-process jobs) behind this worker's Caddy."""
    yield from simulation_app(database_url, fake, repos, tmp_path, **router_config(edge_caddy))


@pytest.fixture
def rclient(routed):
    return routed.test_client()


def test_an_app_answers_at_its_name_and_its_domains_over_https_until_it_is_deleted(rclient, repos, edge_caddy,
                                                                                     routed):
    repos.make("named", flask_app("v1"))
    created = create_deployment(rclient, name="named", framework="flask", github_url=repos.url("named"),
                                health_check_path="/health", env={"GREETING": "router"})
    ident = created["id"]
    running = wait_for_status(rclient, ident, {"running", "failed"}, timeout=240)
    assert running["status"] == "running", running["error_message"]
    assert running["url"] == f"https://named.{DOMAIN}:{edge_caddy.https_port}"

    answer = https_get(edge_caddy, f"named.{DOMAIN}", "/")
    assert (answer.status, answer.body) == (200, b"hello router from v1")
    # The certificate is the internal CA's, for the app's own name.
    assert ("DNS", f"named.{DOMAIN}") in answer.certificate["subjectAltName"]

    # Plain HTTP is sent to HTTPS.
    redirect = http_get(edge_caddy, f"named.{DOMAIN}", "/health?x=1")
    assert redirect.status in (301, 308)
    assert redirect.headers["Location"] == f"https://named.{DOMAIN}:{edge_caddy.https_port}/health?x=1"

    # A custom domain: claimed, served with its own certificate, listed, given up.
    added = rclient.post(f"/api/deployments/{ident}/domains", json={"hostname": "WWW.Example.TEST."})
    assert added.status_code == 201, added.get_json()
    assert added.get_json()["domain"]["hostname"] == "www.example.test" and added.get_json()["routed"] is True
    assert served(edge_caddy, "www.example.test") == (200, "hello router from v1")
    listed = rclient.get(f"/api/deployments/{ident}/domains").get_json()
    assert listed["default"] == f"named.{DOMAIN}" and [d["hostname"] for d in listed["domains"]] == ["www.example.test"]

    # The access log: what the router served for this app, and never a request's credentials.
    https_get(edge_caddy, f"named.{DOMAIN}", "/health?probe=access", headers={"Authorization": "Bearer s3cr3t-xyz"})
    log = rclient.get(f"/api/deployments/{ident}/logs/access?lines=50")
    assert log.status_code == 200
    entries = log.get_json()["entries"]
    assert any(e["uri"] == "/health?probe=access" and e["status"] == 200 and e["method"] == "GET" for e in entries)
    assert "s3cr3t-xyz" not in log.get_data(as_text=True)

    assert rclient.delete(f"/api/deployments/{ident}/domains/www.example.test").status_code == 204
    assert served(edge_caddy, "www.example.test", tls_wait=2)[0] != 200
    assert served(edge_caddy, f"named.{DOMAIN}") == (200, "hello router from v1")

    # Deleted: its name goes from the router with it.
    assert rclient.delete(f"/api/deployments/{ident}").status_code == 202
    wait_for_status(rclient, ident, {"deleted"}, timeout=60)
    assert served(edge_caddy, f"named.{DOMAIN}", tls_wait=2)[0] != 200
    assert platform_of(routed).edge.router.in_sync([])


def test_a_router_restarted_empty_gets_its_routes_back_from_the_sweep_and_from_reconcile(rclient, repos, edge_caddy,
                                                                                        routed):
    repos.make("kept", flask_app("v1"))
    ident = create_deployment(rclient, name="kept", framework="flask", github_url=repos.url("kept"),
                              health_check_path="/health", env={"GREETING": "again"})["id"]
    assert wait_for_status(rclient, ident, {"running", "failed"}, timeout=240)["status"] == "running"
    assert served(edge_caddy, f"kept.{DOMAIN}") == (200, "hello again from v1")

    edge_caddy.restart_empty()
    assert served(edge_caddy, f"kept.{DOMAIN}", tls_wait=2)[0] != 200
    runner = routed.test_cli_runner()
    report = runner.invoke(manage_cli, ["reconcile"], obj=routed)
    assert report.exit_code == 1 and "router: does not hold the 1 route(s)" in report.output, report.output
    fixed = runner.invoke(manage_cli, ["reconcile", "--fix"], obj=routed)
    assert fixed.exit_code == 0 and "loaded the 1 route(s)" in fixed.output, fixed.output
    assert served(edge_caddy, f"kept.{DOMAIN}") == (200, "hello again from v1")
    assert runner.invoke(manage_cli, ["reconcile"], obj=routed).exit_code == 0

    # The serving process's periodic sync does the same by itself.
    edge_caddy.restart_empty()
    sync_router(routed)
    assert served(edge_caddy, f"kept.{DOMAIN}") == (200, "hello again from v1")


def test_deploys_work_while_the_router_is_down_and_their_routes_arrive_when_it_is_back(rclient, repos, edge_caddy,
                                                                                      routed):
    platform = platform_of(routed)
    working = platform.edge
    down = dataclasses.replace(working.router.settings, admin_url="http://127.0.0.1:9")  # discard: nothing listens
    platform.edge = dataclasses.replace(working, router=type(working.router)(down))
    try:
        repos.make("patient", flask_app("v1"))
        ident = create_deployment(rclient, name="patient", framework="flask", github_url=repos.url("patient"),
                                  health_check_path="/health", env={"GREETING": "later"})["id"]
        running = wait_for_status(rclient, ident, {"running", "failed"}, timeout=240)
        assert running["status"] == "running", running["error_message"]
        assert fetch(f"http://{running['ip_address']}:8000/") == (200, "hello later from v1")
        added = rclient.post(f"/api/deployments/{ident}/domains", json={"hostname": "later.example.test"})
        assert added.status_code == 201 and added.get_json()["routed"] is False
        report = routed.test_cli_runner().invoke(manage_cli, ["reconcile"], obj=routed)
        assert report.exit_code == 1 and "error: router:" in report.output
    finally:
        platform.edge = working
    sync_router(routed)
    assert served(edge_caddy, f"patient.{DOMAIN}") == (200, "hello later from v1")
    assert served(edge_caddy, "later.example.test") == (200, "hello later from v1")


def test_redeploys_under_constant_load_through_the_router_lose_no_request(rclient, repos, edge_caddy, routed):
    repos.make("steady", flask_app("v1"))
    ident = create_deployment(rclient, name="steady", framework="flask", github_url=repos.url("steady"),
                              health_check_path="/health", env={"GREETING": "load"})["id"]
    assert wait_for_status(rclient, ident, {"running", "failed"}, timeout=240)["status"] == "running"
    host = f"steady.{DOMAIN}"

    served(edge_caddy, host)  # its certificate is there: from now on every handshake must succeed at once
    check_redeploys_lose_nothing(rclient, ident, repos, "steady", "load",
                                 lambda: served(edge_caddy, host, tls_wait=0))
    log = rclient.get(f"/api/deployments/{ident}/logs/text?release=2").get_data(as_text=True)
    assert "start release 2 beside release 1, on port 8001" in log and "health check: GET" in log
    assert "the router sends the app's requests to port 8001 until the app's own port answers again" in log
    assert [r["status"] for r in releases_of(rclient, ident)][:2] == ["failed", "live"]
    deployment = rclient.get(f"/api/deployments/{ident}").get_json()["deployment"]
    assert deployment["status"] == "running" and deployment["live_release"] == 2
    sandbox = Path(routed.config["SIMULATION_DIR"]) / "guests" / ident
    assert json.loads((sandbox / ".services" / "paas-app.json").read_text())  # the app's own service serves
    assert not (sandbox / ".services" / "paas-app--next.json").exists()  # and no candidate is left
