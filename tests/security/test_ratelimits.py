"""Rate limits: 429 with Retry-After in the error shape; per user; shared through Redis when configured."""
import uuid

import pytest

from app import db
from tests.helpers.accounts import admin_token, make_user
from tests.helpers.api import deployment_payload
from tests.helpers.apps import create_test_app

REDIS_URL = "redis://127.0.0.1:6379/15"


def limited_app(database_url, proxmox, **config):
    """A test app with rate limits on (low ones for creates and tokens), keyed apart from every other test's."""
    settings = {"PROXMOX_SETTINGS": proxmox,
                "RATELIMIT_ENABLED": True, "RATELIMIT_DEFAULT": "1000 per minute", "RATELIMIT_CREATE": "3 per minute",
                "RATELIMIT_TOKENS": "2 per minute", "RATELIMIT_KEY_PREFIX": f"t{uuid.uuid4().hex[:8]}"}
    settings.update(config)
    return create_test_app(SQLALCHEMY_DATABASE_URI=database_url, **settings)


@pytest.fixture
def lapp(database_url, unreachable_proxmox):
    app = limited_app(database_url, unreachable_proxmox)
    yield app
    with app.app_context():
        db.engine.dispose()


def test_creates_beyond_the_limit_answer_429_with_retry_after(lapp):
    client = lapp.test_client()
    codes = [client.post("/api/deployments", json=deployment_payload(name=f"app-{i}")).status_code for i in range(4)]
    assert codes == [201, 201, 201, 429]
    response = client.post("/api/deployments", json=deployment_payload(name="app-9"))
    assert response.status_code == 429
    assert 0 < int(response.headers["Retry-After"]) <= 60
    error = response.get_json()["error"]
    assert error["code"] == "too_many_requests" and "3 per 1 minute" in error["message"]
    # Other routes keep working: the create limit is its own.
    assert client.get("/api/deployments").status_code == 200


def test_each_user_has_their_own_counts(lapp):
    client = lapp.test_client()
    _, alice = make_user(lapp, "alice")
    _, bob = make_user(lapp, "bob")
    assert [client.get("/api/tokens", token=alice).status_code for _ in range(3)] == [200, 200, 429]
    assert client.get("/api/tokens", token=bob).status_code == 200


def test_requests_without_a_token_are_counted_per_address(database_url, unreachable_proxmox):
    app = limited_app(database_url, unreachable_proxmox, RATELIMIT_DEFAULT="2 per minute")
    client = app.test_client()
    codes = [client.get("/api/deployments", token=None).status_code for _ in range(3)]
    assert codes == [401, 401, 429]
    other = client.get("/api/deployments", token=None, environ_base={"REMOTE_ADDR": "127.0.0.9"})
    assert other.status_code == 401
    assert client.get("/health").status_code == 200  # the health check is never limited
    with app.app_context():
        db.engine.dispose()


def test_two_api_processes_share_counts_through_redis(database_url, unreachable_proxmox):
    prefix = f"shared{uuid.uuid4().hex[:8]}"
    shared = {"RATELIMIT_STORAGE_URI": REDIS_URL, "RATELIMIT_KEY_PREFIX": prefix}
    first = limited_app(database_url, unreachable_proxmox, **shared)
    second = limited_app(database_url, unreachable_proxmox, **shared)
    token = admin_token(first)
    second.extensions["test_admin_token"] = token
    one, two = first.test_client(), second.test_client()
    assert one.post("/api/deployments", json=deployment_payload(name="app-1")).status_code == 201
    assert two.post("/api/deployments", json=deployment_payload(name="app-2")).status_code == 201
    assert one.post("/api/deployments", json=deployment_payload(name="app-3")).status_code == 201
    assert two.post("/api/deployments", json=deployment_payload(name="app-4")).status_code == 429
    for app in (first, second):
        with app.app_context():
            db.engine.dispose()


def test_limits_are_off_in_the_test_configuration_unless_asked_for(app, client):
    assert app.config["RATELIMIT_ENABLED"] is False
    assert all(client.get("/api/tokens").status_code == 200 for _ in range(30))


def test_the_github_webhook_is_counted_per_deployment_not_per_sender(database_url, unreachable_proxmox):
    app = limited_app(database_url, unreachable_proxmox, RATELIMIT_WEBHOOK="2 per minute")
    client = app.test_client()
    first, second = uuid.uuid4(), uuid.uuid4()
    codes = [client.post(f"/api/webhooks/github/{first}", data=b"{}").status_code for _ in range(3)]
    assert codes == [401, 401, 429]
    assert client.post(f"/api/webhooks/github/{second}", data=b"{}").status_code == 401
    with app.app_context():
        db.engine.dispose()
