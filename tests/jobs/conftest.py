"""An app whose jobs provision on the fake Proxmox, over real HTTPS with the real proxmoxer."""
import time

import pytest

from backend.proxmox.settings import ProxmoxSettings
from tests.helpers.apps import create_test_app

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx paas@platform"
FINAL = {"running", "stopped", "failed", "deleted"}


def settings_for(fake, **overrides):
    values = {"host": fake.host, "port": fake.port, "user": "root@pam", "token_name": "paas",
              "token_value": "secret", "ca_bundle": fake.ca_bundle_path, "timeout": 5, "vm_template_id": 9000,
              "ssh_public_key": KEY, "task_timeout": 20, "ip_timeout": 5, "storage": "local-lvm"}
    values.update(overrides)
    return ProxmoxSettings(**values)


def make_app(database_url, fake, backend="thread", settings=None, **config):
    values = {"SQLALCHEMY_DATABASE_URI": database_url, "JOBS_BACKEND": backend, "JOB_WORKERS": 4,
              "JOB_TIME_LIMIT": 60, "JOB_LEASE_SECONDS": 6,
              "PROXMOX_SETTINGS": settings or settings_for(fake)}
    values.update(config)
    return create_test_app(**values)


@pytest.fixture
def papp(database_url, fake):
    """The app with in-process jobs (no app context pushed: each request and job has its own)."""
    app = make_app(database_url, fake)
    yield app
    app.extensions["jobs"].wait_idle(30)
    app.extensions["jobs"].shutdown()
    fake.assert_no_violations()


@pytest.fixture
def pclient(papp):
    return papp.test_client()


def wait_for(client, ident, statuses=FINAL, timeout=30.0):
    """Poll GET /api/deployments/<ident> until its status is one of statuses; the deployment."""
    deadline = time.monotonic() + timeout
    while True:
        deployment = client.get(f"/api/deployments/{ident}").get_json()["deployment"]
        if deployment["status"] in statuses:
            return deployment
        if time.monotonic() > deadline:
            raise AssertionError(f"still {deployment['status']} after {timeout} s: {deployment}")
        time.sleep(0.05)


def guests_of(fake):
    """VMIDs of the guests on the fake, templates left out."""
    return sorted(fake.guest_ids())


def create(client, **overrides):
    from tests.helpers.api import deployment_payload

    response = client.post("/api/deployments", json=deployment_payload(**overrides))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["deployment"]


def events(client, ident):
    return client.get(f"/api/deployments/{ident}/events").get_json()["events"]


def status_chain(client, ident):
    return [e["to_status"] for e in events(client, ident) if e["kind"] == "status"]
