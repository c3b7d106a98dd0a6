"""Isolation: a member never reaches another user's deployment, on any method of any route.

Someone else's deployment answers 404 (never 403), by id and by name, and nothing about it changes.
"""
import pytest

from app import db
from backend.models import AuditEntry, Deployment, DeploymentEvent, DeploymentStatus, Release
from backend.platform import platform_of
from tests.helpers.accounts import make_user
from tests.helpers.api import deployment_payload

# A body each route accepts, so that a 404 is the ownership check and not a validation error.
BODIES = {
    "api.update_deployment": {"tags": ["stolen"]},
    "api.patch_env": {"STOLEN": "yes"},
    "api.redeploy": {},
    "api.set_notification_target": {"url": "https://example.com/hook"},
    "api.add_domain": {"hostname": "stolen.example.org"},
    "api.restore_backup": {"name": "stolen-copy"},
}


def deployment_routes(app):
    """(method, rule, endpoint) of every route under a deployment (its ident in the path)."""
    found = []
    for rule in app.url_map.iter_rules():
        if "ident" in rule.arguments and rule.rule.startswith("/api/deployments/"):
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                found.append((method, rule, rule.endpoint))
    return found


def _fill(rule, ident):
    path = rule.rule.replace("<ident>", ident)
    return (path.replace("<action>", "stop").replace("<version>", "1")
            .replace("<backup_id>", "00000000-0000-4000-8000-000000000000").replace("<hostname>", "www.example.org"))


def snapshot(app, deployment_id):
    with app.app_context():
        deployment = db.session.get(Deployment, deployment_id)
        state = {
            "row": {k: v for k, v in deployment.to_dict().items() if k != "env"},
            "env": deployment.env_encrypted,
            "webhook": deployment.webhook_secret_encrypted,
            "notify": deployment.notify_url,
            "events": db.session.scalar(db.select(db.func.count()).select_from(DeploymentEvent)
                                        .where(DeploymentEvent.deployment_id == deployment_id)),
            "releases": db.session.scalar(db.select(db.func.count()).select_from(Release)
                                          .where(Release.deployment_id == deployment_id)),
            "audit": db.session.scalar(db.select(db.func.count()).select_from(AuditEntry)
                                       .where(AuditEntry.deployment_id == deployment_id)),
        }
        db.session.remove()
    return state


@pytest.fixture
def two_members(app, client):
    """alice's running deployment (with one release) and bob, another member."""
    _, alice = make_user(app, "alice")
    _, bob = make_user(app, "bob")
    created = client.post("/api/deployments", json=deployment_payload(name="alice-app", env={"SECRET": "s3cret"}),
                          token=alice)
    assert created.status_code == 201, created.get_json()
    deployment_id = created.get_json()["deployment"]["id"]
    with app.app_context():
        row = db.session.get(Deployment, Deployment.get_by_id(deployment_id).id)
        row.status, row.vm_id, row.node, row.ip_address = DeploymentStatus.RUNNING, 123, "pve1", "10.0.0.5"
        db.session.commit()
        db.session.remove()
    db.session.rollback()  # the test's own session: end its snapshot (MariaDB's repeatable read)
    assert client.post(f"/api/deployments/{deployment_id}/actions/redeploy", json={}, token=alice).status_code == 202
    platform_of(app).jobs.queue.clear()
    return {"alice": alice, "bob": bob, "id": deployment_id, "name": "alice-app"}


def test_every_deployment_route_answers_404_to_another_member_and_changes_nothing(app, client, two_members):
    routes = deployment_routes(app)
    assert len(routes) >= 20, routes
    before = snapshot(app, Deployment.get_by_id(two_members["id"]).id)
    for ident in (two_members["id"], two_members["name"]):
        for method, rule, endpoint in routes:
            response = client.open(_fill(rule, ident), method=method, json=BODIES.get(endpoint),
                                   token=two_members["bob"])
            assert response.status_code == 404, (method, rule.rule, endpoint, response.status_code,
                                                  response.get_data(as_text=True)[:200])
            body = response.get_json()
            assert body["error"]["code"] == "not_found"
            assert "s3cret" not in response.get_data(as_text=True)
    assert snapshot(app, Deployment.get_by_id(two_members["id"]).id) == before
    assert platform_of(app).jobs.queue == []


def test_the_owner_and_admins_reach_the_same_routes(app, client, two_members):
    for ident in (two_members["id"], two_members["name"]):
        for token in (two_members["alice"], "admin"):
            for path in ("", "/events", "/history", "/releases", "/releases/1", "/env", "/logs", "/logs/text",
                         "/webhook", "/notifications", "/deliveries"):
                response = client.get(f"/api/deployments/{ident}{path}", token=token)
                assert response.status_code == 200, (ident, path, response.get_json())


def test_a_404_for_someone_elses_deployment_reads_like_one_for_a_missing_deployment(client, two_members):
    theirs = client.get(f"/api/deployments/{two_members['name']}", token=two_members["bob"]).get_json()
    missing = client.get("/api/deployments/no-such-app", token=two_members["bob"]).get_json()
    assert theirs["error"]["message"].replace("alice-app", "X") == missing["error"]["message"].replace(
        "no-such-app", "X")


def test_lists_and_stats_hold_only_the_callers_deployments(app, client, two_members):
    bob = two_members["bob"]
    client.post("/api/deployments", json=deployment_payload(name="bob-app"), token=bob)
    for query in ("", "?include_deleted=true", "?name=alice", "?status=deploying"):
        names = {d["name"] for d in client.get(f"/api/deployments{query}", token=bob).get_json()["deployments"]}
        assert "alice-app" not in names
    assert {d["name"] for d in client.get("/api/deployments", token=bob).get_json()["deployments"]} == {"bob-app"}
    assert client.get("/api/stats", token=bob).get_json()["total"] == 1
    everything = {d["name"] for d in client.get("/api/deployments").get_json()["deployments"]}
    assert everything == {"alice-app", "bob-app"}
    assert client.get("/api/stats").get_json()["total"] == 2


def test_the_owner_comes_from_the_token_never_from_the_body(app, client, two_members):
    bob = two_members["bob"]
    alice_id = client.get("/api/me", token=two_members["alice"]).get_json()["user"]["id"]
    sneaky = client.post("/api/deployments", json=deployment_payload(name="bob-app", user_id=alice_id), token=bob)
    assert sneaky.status_code == 422
    made = client.post("/api/deployments", json=deployment_payload(name="bob-app"), token=bob).get_json()
    assert made["deployment"]["user_id"] == client.get("/api/me", token=bob).get_json()["user"]["id"]
    assert client.patch("/api/deployments/bob-app", json={"user_id": alice_id}, token=bob).status_code == 422


def test_names_are_unique_across_users_without_revealing_the_other_deployment(client, two_members):
    response = client.post("/api/deployments", json=deployment_payload(name="alice-app"), token=two_members["bob"])
    assert response.status_code == 409
    assert two_members["id"] not in response.get_data(as_text=True)
