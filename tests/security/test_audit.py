"""The audit log: who did what to which deployment, when and from where; admins read it, filtered."""
from app import db
from backend.models import Deployment, DeploymentStatus
from tests.helpers.accounts import make_user
from tests.helpers.api import deployment_payload

ADDRESS = {"REMOTE_ADDR": "192.0.2.44"}


def entries(client, query=""):
    response = client.get(f"/api/audit{query}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["entries"]


def test_changes_to_a_deployment_are_audited_with_user_address_and_keys_only(app, client):
    _, alice = make_user(app, "alice")
    made = client.post("/api/deployments", json=deployment_payload(name="shop", env={"API_KEY": "hunter2-value"}),
                       token=alice, environ_base=ADDRESS).get_json()["deployment"]
    client.patch(f"/api/deployments/{made['id']}", json={"tags": ["web"]}, token=alice, environ_base=ADDRESS)
    client.patch(f"/api/deployments/{made['id']}/env", json={"DB_URL": "postgres://secret", "API_KEY": None},
                 token=alice, environ_base=ADDRESS)
    with app.app_context():
        row = db.session.get(Deployment, Deployment.get_by_id(made["id"]).id)
        row.status, row.vm_id = DeploymentStatus.RUNNING, 150
        db.session.commit()
        db.session.remove()
    db.session.rollback()
    assert client.post(f"/api/deployments/{made['id']}/actions/stop", token=alice).status_code == 202
    assert client.delete(f"/api/deployments/{made['id']}", token=alice, environ_base=ADDRESS).status_code == 202

    log = entries(client, f"?deployment={made['id']}")
    actions = [e["action"] for e in reversed(log)]
    assert actions == ["deployment.create", "deployment.update", "deployment.env", "deployment.stop",
                       "deployment.delete"]
    for entry in log:
        assert entry["username"] == "alice" and entry["deployment_id"] == made["id"] and entry["target"] == "shop"
        assert entry["time"] and entry["request_id"]
    assert {e["ip_address"] for e in log if e["action"] != "deployment.stop"} == {"192.0.2.44"}
    env_entry = next(e for e in log if e["action"] == "deployment.env")
    assert env_entry["details"] == {"set": ["DB_URL"], "deleted": ["API_KEY"]}
    create_entry = next(e for e in log if e["action"] == "deployment.create")
    assert create_entry["details"]["env_keys"] == ["API_KEY"]
    text = client.get("/api/audit").get_data(as_text=True)
    assert "hunter2-value" not in text and "postgres://secret" not in text


def test_token_and_user_changes_are_audited(app, client):
    _, alice = make_user(app, "alice")
    created = client.post("/api/tokens", json={"name": "ci"}, token=alice).get_json()
    client.delete(f"/api/tokens/{created['token_info']['id']}", token=alice)
    user = client.post("/api/users", json={"username": "bob"}).get_json()["user"]
    client.patch(f"/api/users/{user['id']}", json={"quotas": {"cores": 4}})
    actions = [e["action"] for e in entries(client)]
    assert actions[:4] == ["user.update", "user.create", "token.revoke", "token.create"]
    token_entries = entries(client, "?action=token.")
    assert [e["action"] for e in token_entries] == ["token.revoke", "token.create"]
    assert all(e["username"] == "alice" and e["target"] == f"token {created['token_info']['prefix']}"
               for e in token_entries)
    assert created["token"] not in client.get("/api/audit").get_data(as_text=True)


def test_the_audit_log_filters_by_user_and_pages_newest_first(app, client):
    _, alice = make_user(app, "alice")
    for i in range(5):
        client.post("/api/deployments", json=deployment_payload(name=f"app-{i}"), token=alice)
    client.post("/api/deployments", json=deployment_payload(name="admin-app"))
    first = client.get("/api/audit?user=alice&limit=3").get_json()
    assert [e["target"] for e in first["entries"]] == ["app-4", "app-3", "app-2"]
    rest = client.get(f"/api/audit?user=alice&limit=3&before={first['next_before']}").get_json()
    assert [e["target"] for e in rest["entries"]] == ["app-1", "app-0"] and rest["next_before"] is None
    assert client.get("/api/audit?user=nobody").status_code == 404
    assert client.get("/api/audit?action=DROP TABLE").status_code == 422


def test_an_audit_time_without_an_offset_is_read_as_utc(app, client):
    """A naive time reached the database once and failed there (500); it is UTC, as the log's times are."""
    client.post("/api/tokens", json={"name": "marker"})
    naive = client.get("/api/audit?action=token.create&since=2000-01-01T00:00:00")
    assert naive.status_code == 200, naive.get_json()
    assert [e["action"] for e in naive.get_json()["entries"]] == ["token.create"]
    assert client.get("/api/audit?action=token.create&since=2999-01-01T00:00:00").get_json()["entries"] == []
    offset = client.get("/api/audit?action=token.create&until=2000-01-01T02:00:00%2B02:00")
    assert offset.status_code == 200 and offset.get_json()["entries"] == []
