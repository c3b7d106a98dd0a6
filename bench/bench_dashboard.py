"""The dashboard's pages beside the API calls that read the same things: server time of each, and the ratio.

A deployment's page is measured on one with history (10 releases, 100 events, variables), as its API call.

Each pair is timed in alternation through the real app (the Flask test client: the request's whole server side,
no network), on PostgreSQL with a few thousand deployments and the fake Proxmox as a child process for the parts
that ask Proxmox. Responses are not schema-checked (VALIDATE_RESPONSES off, as in production). Prints figures
and ratios; the target is a page within 2x its API call. Passes or fails nothing. Usage:
    python bench/bench_dashboard.py [--rows 5000] [--repeat 40] [--url postgresql://...]
The database named in --url (default: BENCH_DATABASE_URL, else the local 'paas_bench') is wiped.
"""
import argparse
import os
import re
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app, db
from backend.models import Deployment, DeploymentEvent, Release
from backend.models.types import utcnow
from backend.services import envvars, passwords
from bench.bench_listing import DEFAULT_URL, ensure_database
from bench.common import FakeProcess, fresh_schema_with_admin, insert_deployments

PASSWORD = "bench password, long enough"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def give_history(name, releases=10, events=100):
    """The deployment `name` as a year of use leaves it: releases (the last live), events, a few variables."""
    deployment = Deployment.get_by_name(name)
    for version in range(1, releases + 1):
        db.session.add(Release(deployment_id=deployment.id, version=version, reason="redeploy", branch="main",
                               status="live" if version == releases else "superseded", commit_sha=f"{version:040x}",
                               config={"framework": "flask", "start": "gunicorn app:app"}))
    for n in range(events):
        db.session.add(DeploymentEvent(deployment_id=deployment.id, kind="step", message=f"step {n} of a release"))
    deployment.live_release = releases
    deployment.env_encrypted = envvars.encrypt({"DEBUG": "0", "API_KEY": "x" * 32, "GREETING": "Hello"})
    db.session.commit()


def log_in(client):
    page = client.get("/login").get_data(as_text=True)
    token = CSRF_RE.search(page).group(1)
    response = client.post("/login", data={"csrf_token": token, "username": "bench", "password": PASSWORD})
    assert response.status_code == 302, response.status_code


def pairs(name):
    """(what, the page, the API call reading the same)."""
    return [
        ("deployments list", "/", "/api/deployments?per_page=50"),
        ("list, filtered", "/deployments/rows?status=running&name=app-00",
         "/api/deployments?per_page=50&status=running&name=app-00"),
        ("a deployment", f"/deployments/{name}", f"/api/deployments/{name}"),
        ("its events", f"/deployments/{name}/events", f"/api/deployments/{name}/events?limit=50"),
        ("account: tokens", "/account", "/api/tokens"),
        ("audit log", "/admin/audit", "/api/audit"),
        ("users", "/admin/users", "/api/users"),
    ]


def timed_pair(web, api, token, page, call, repeat):
    """Medians in ms of the page and the API call, measured in alternation after two warm-up rounds of each."""
    headers = {"Authorization": f"Bearer {token}"}
    samples = {"page": [], "api": []}
    for round_ in range(repeat + 2):
        for kind, client, url, kwargs in (("page", web, page, {}), ("api", api, call, {"headers": headers})):
            began = time.perf_counter()
            response = client.get(url, **kwargs)
            elapsed = (time.perf_counter() - began) * 1000
            assert response.status_code == 200, (url, response.status_code)
            if round_ >= 2:
                samples[kind].append(elapsed)
    return statistics.median(samples["page"]), statistics.median(samples["api"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()

    ensure_database(args.url)
    fake = FakeProcess(task_seconds=0.1, lifetime=900)
    try:
        app = create_app("testing", SQLALCHEMY_DATABASE_URI=args.url, VALIDATE_RESPONSES=False,
                         PROXMOX_SETTINGS=fake.settings())
        with app.app_context():
            admin, token = fresh_schema_with_admin()
            passwords.set_password(admin, PASSWORD)
            insert_deployments(args.rows, utcnow() - timedelta(days=30), user_id=admin.id)
            give_history("app-000042")
        web, api = app.test_client(), app.test_client()
        log_in(web)
        print(f"{args.rows} deployments on {app.config['SQLALCHEMY_DATABASE_URI'].split('@')[-1]}, "
              f"{args.repeat} rounds a pair, medians of server time")
        print(f"{'':20} {'page ms':>9} {'API ms':>9} {'page/API':>9}")
        worst = 0.0
        for what, page, call in pairs("app-000042"):
            page_ms, api_ms = timed_pair(web, api, token, page, call, args.repeat)
            worst = max(worst, page_ms / api_ms)
            print(f"{what:20} {page_ms:9.2f} {api_ms:9.2f} {page_ms / api_ms:8.2f}x")
        print(f"worst ratio {worst:.2f}x (target: a page within 2x its API call)")
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
