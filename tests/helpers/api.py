"""Driving the API through a test client: request bodies, creating deployments, waiting for them, reading them."""
import time

FINAL_STATUSES = {"running", "stopped", "failed", "deleted"}


def deployment_payload(**overrides):
    """A valid create body; tests override what they are about."""
    body = {
        "name": "shop-api",
        "deployment_type": "lxc",
        "framework": "flask",
        "github_url": "https://github.com/acme/shop-api",
    }
    body.update(overrides)
    return body


def create_deployment(client, token="admin", **overrides):
    """POST deployment_payload(**overrides) as token's user; the created deployment's JSON (asserts 201)."""
    response = client.post("/api/deployments", json=deployment_payload(**overrides), token=token)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["deployment"]


def wait_for_status(client, ident, statuses=FINAL_STATUSES, timeout=30.0):
    """Poll GET /api/deployments/<ident> until its status is one of statuses; the deployment."""
    deadline = time.monotonic() + timeout
    while True:
        deployment = client.get(f"/api/deployments/{ident}").get_json()["deployment"]
        if deployment["status"] in statuses:
            return deployment
        if time.monotonic() > deadline:
            raise AssertionError(f"still {deployment['status']} after {timeout} s: {deployment}")
        time.sleep(0.05)


def events_of(client, ident):
    """The deployment's events, oldest first."""
    return client.get(f"/api/deployments/{ident}/events").get_json()["events"]


def status_chain(client, ident):
    """The statuses the deployment went through, in order."""
    return [e["to_status"] for e in events_of(client, ident) if e["kind"] == "status"]
