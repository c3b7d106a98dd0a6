"""Driving the API through a test client: request bodies, creating deployments, waiting for them, reading them."""
import hashlib
import hmac
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


def error_of(response):
    """The error object of a failed answer, checked for the error shape (success false; code, message, fields)."""
    body = response.get_json()
    assert body["success"] is False, body
    assert set(body["error"]) >= {"code", "message", "fields"}
    return body["error"]


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


def releases_of(client, ident):
    """The deployment's releases, newest first (asserts 200)."""
    response = client.get(f"/api/deployments/{ident}/releases")
    assert response.status_code == 200
    return response.get_json()["releases"]


def wait_for_release(client, ident, version, timeout=180):
    """Release version once it is live, failed or cancelled, and the deployment's status has followed."""
    deadline = time.monotonic() + timeout
    while True:
        found = {r["version"]: r for r in releases_of(client, ident)}
        release = found.get(version)
        if release and release["status"] in ("live", "failed", "cancelled"):
            # The release's job ends with the deployment's status change; wait for that too.
            wait_for_status(client, ident, {"running", "failed", "stopped"}, timeout=30)
            return release
        assert time.monotonic() < deadline, f"release {version} still {release and release['status']}"
        time.sleep(0.1)


def build_log(client, ident, release=None):
    """The build log as text: every release's, or one release's."""
    query = "?limit=5000" + (f"&release={release}" if release else "")
    return client.get(f"/api/deployments/{ident}/logs/text{query}").get_data(as_text=True)


def sha256_signature(secret, body):
    """"sha256=<hex HMAC-SHA256 of body>", as GitHub signs its deliveries and the platform its notifications."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def wait_for_restore(client, ident, version, timeout=120.0):
    """The deployment once the restore to release `version` has ended: running with it live, or failed."""
    deadline = time.monotonic() + timeout
    while True:
        deployment = client.get(f"/api/deployments/{ident}").get_json()["deployment"]
        if deployment["status"] == "failed" or (deployment["status"] == "running"
                                                 and deployment["live_release"] == version):
            return deployment
        if time.monotonic() > deadline:
            raise AssertionError(f"restore to release {version} not over after {timeout} s: {deployment}")
        time.sleep(0.1)
