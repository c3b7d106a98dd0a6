"""Per-user quotas on deployments, cores, memory and disk; admins set them per user."""
import threading

from app import db
from backend.models import Deployment
from tests.helpers.accounts import make_user
from tests.helpers.api import deployment_payload
from tests.helpers.network import call_api, serving


def create(client, token, name, **resources):
    return client.post("/api/deployments", json=deployment_payload(name=name, resources=resources or None),
                       token=token)


def test_the_deployment_count_quota_answers_422_naming_the_limit(app, client):
    app.config["QUOTA_DEPLOYMENTS"] = 2
    _, alice = make_user(app, "alice")
    assert create(client, alice, "app-one").status_code == 201
    assert create(client, alice, "app-two").status_code == 201
    third = create(client, alice, "app-three")
    assert third.status_code == 422
    error = third.get_json()["error"]
    assert error["code"] == "quota_exceeded"
    assert "deployments" in error["message"] and "limit 2" in error["fields"]["quota.deployments"]
    with app.app_context():
        assert Deployment.get_by_name("app-three") is None


def test_cores_memory_and_disk_quotas_each_name_themselves(app, client):
    _, alice = make_user(app, "alice", quotas={"cores": 3, "memory": 2048, "disk": 30})
    assert create(client, alice, "app-one", cores=2, memory=1024, disk=10).status_code == 201
    for resources, limit in (({"cores": 2}, "cores"), ({"memory": 1536}, "memory"), ({"disk": 25}, "disk")):
        response = create(client, alice, "app-two", **resources)
        assert response.status_code == 422, resources
        assert list(response.get_json()["error"]["fields"]) == [f"quota.{limit}"]
        assert limit in response.get_json()["error"]["message"]
    assert create(client, alice, "app-two", cores=1, memory=1024, disk=20).status_code == 201


def test_resizing_counts_against_the_quota_too(app, client):
    _, alice = make_user(app, "alice", quotas={"cores": 4})
    made = create(client, alice, "app-one", cores=2).get_json()["deployment"]
    response = client.patch(f"/api/deployments/{made['id']}", json={"resources": {"cores": 5}}, token=alice)
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "quota_exceeded"
    ok = client.patch(f"/api/deployments/{made['id']}", json={"resources": {"cores": 4}}, token=alice)
    assert ok.status_code == 200 and ok.get_json()["deployment"]["resources"]["cores"] == 4


def test_deleted_deployments_free_their_share(app, client, run_jobs):
    app.config["QUOTA_DEPLOYMENTS"] = 1
    _, alice = make_user(app, "alice")
    made = create(client, alice, "app-one").get_json()["deployment"]
    assert create(client, alice, "app-two").status_code == 422
    with app.app_context():
        row = db.session.get(Deployment, Deployment.get_by_id(made["id"]).id)
        row.deleted_at = row.created_at
        db.session.commit()
        db.session.remove()
    db.session.rollback()
    assert create(client, alice, "app-two").status_code == 201


def test_an_admin_raises_a_users_quota_and_me_reports_limits_and_usage(app, client):
    app.config["QUOTA_DEPLOYMENTS"] = 1
    alice_id, alice = make_user(app, "alice")
    create(client, alice, "app-one", cores=2)
    assert create(client, alice, "app-two").status_code == 422
    me = client.get("/api/me", token=alice).get_json()
    assert me["quotas"]["deployments"] == 1 and me["usage"] == {"deployments": 1, "cores": 2, "memory": 512,
                                                                "disk": 8}
    raised = client.patch(f"/api/users/{alice_id}", json={"quotas": {"deployments": 5}})
    assert raised.status_code == 200 and raised.get_json()["user"]["quota_overrides"]["deployments"] == 5
    assert create(client, alice, "app-two").status_code == 201
    # null returns to the configured default.
    client.patch(f"/api/users/{alice_id}", json={"quotas": {"deployments": None}})
    assert client.get("/api/me", token=alice).get_json()["quotas"]["deployments"] == 1
    assert client.patch(f"/api/users/{alice_id}", json={"quotas": {"deployments": -1}}).status_code == 422


def test_admins_have_no_quota(app, client):
    app.config["QUOTA_DEPLOYMENTS"] = 0
    assert client.post("/api/deployments", json=deployment_payload(name="admin-app")).status_code == 201
    assert client.get("/api/me").get_json()["quotas"] is None


def test_concurrent_creates_cannot_overrun_the_quota(app):
    """Ten creates at once through a real threaded server, three slots: exactly three rows."""
    app.config["QUOTA_DEPLOYMENTS"] = 3
    _, alice = make_user(app, "alice")
    start = threading.Barrier(10)
    codes = []
    with serving(app) as base:

        def post(i):
            body = deployment_payload(name=f"race-{i:02d}")
            start.wait(timeout=30)
            codes.append(call_api(base, "POST", "/deployments", body, alice, timeout=60)[0])

        workers = [threading.Thread(target=post, args=(i,)) for i in range(10)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=90)
    assert sorted(codes) == [201] * 3 + [422] * 7, codes
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Deployment)) == 3


def test_a_user_over_quota_can_still_shrink_but_not_grow(app, client):
    alice_id, alice = make_user(app, "alice", quotas={"cores": 8})
    made = create(client, alice, "app-one", cores=6).get_json()["deployment"]
    client.patch(f"/api/users/{alice_id}", json={"quotas": {"cores": 2}})  # the admin lowers the quota
    shrink = client.patch(f"/api/deployments/{made['id']}", json={"resources": {"cores": 4}}, token=alice)
    assert shrink.status_code == 200, shrink.get_json()
    grow = client.patch(f"/api/deployments/{made['id']}", json={"resources": {"cores": 5}}, token=alice)
    assert grow.status_code == 422 and "quota.cores" in grow.get_json()["error"]["fields"]
