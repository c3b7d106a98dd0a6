"""GitHub push-to-deploy: POST /api/webhooks/github/<id>, and turning it on and off per deployment, on every engine."""
import itertools
import json
import uuid
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from app import db
from backend.models import Deployment, DeploymentStatus, GithubDelivery
from backend.platform import platform_of
from backend.services.webhooks import BAD_SIGNATURE
from tests.helpers.accounts import make_user
from tests.helpers.api import error_of, releases_of, sha256_signature

COMMIT = "3f786850e387550fdab836ed7e6dc881de23001b"
OTHER_COMMIT = "89e6c98d92887913cadf06b2adb97f26cde4849b"


def push_payload(**overrides):
    payload = {
        "ref": "refs/heads/main",
        "after": COMMIT,
        "repository": {"html_url": "https://github.com/acme/shop-api", "full_name": "acme/shop-api",
                       "clone_url": "https://github.com/acme/shop-api.git"},
        "deleted": False,
    }
    payload.update(overrides)
    return payload


def deliver(client, deployment_id, secret, payload=None, *, event="push", delivery=None, body=None,
            content_type="application/json", signature=None, headers=None):
    """POST a delivery as GitHub does: no bearer token, the body signed with the secret."""
    if body is None:
        body = json.dumps(push_payload() if payload is None else payload).encode()
    sent = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "User-Agent": "GitHub-Hookshot/abc123"}
    if signature is None and secret is not None:
        signature = sha256_signature(secret, body)
    if signature is not None:
        sent["X-Hub-Signature-256"] = signature
    sent.update(headers or {})
    return client.post(f"/api/webhooks/github/{deployment_id}", data=body, content_type=content_type,
                       headers=sent, token=None)


@pytest.fixture
def running_deployment(make_deployment):
    """A deployment created through the API, then put in status running with a guest (no jobs ran)."""
    vmids = itertools.count(100)

    def make(**overrides):
        created = make_deployment(**overrides)
        deployment = Deployment.get_by_id(created["id"])
        vmid = next(vmids)
        deployment.status = DeploymentStatus.RUNNING
        deployment.node, deployment.vm_id, deployment.ip_address = "pve1", vmid, f"10.10.0.{vmid - 90}"
        db.session.commit()
        return created["id"]
    return make


@pytest.fixture
def hooked(client, running_deployment):
    """A running deployment with push-to-deploy on: (deployment id, secret)."""
    ident = running_deployment()
    response = client.post(f"/api/deployments/{ident}/webhook")
    assert response.status_code == 201, response.get_json()
    return ident, response.get_json()["secret"]


def status_of(client, ident):
    return client.get(f"/api/deployments/{ident}").get_json()["deployment"]["status"]


def delivery_rows(ident):
    """(delivery_id, event, outcome) of the deployment's recorded deliveries (plain rows, not ORM objects:
    the requests share this session, and a loaded object would shadow a later insert of the same id)."""
    db.session.rollback()  # a fresh snapshot (MariaDB's repeatable read)
    return db.session.execute(select(GithubDelivery.delivery_id, GithubDelivery.event, GithubDelivery.outcome)
                              .where(GithubDelivery.deployment_id == uuid.UUID(ident))).all()


def assert_nothing_happened(client, ident):
    assert releases_of(client, ident) == []
    assert delivery_rows(ident) == []
    assert status_of(client, ident) == "running"


# -- turning it on and off -------------------------------------------------------------------------------


def test_enabling_returns_the_secret_once_and_the_payload_url(client, running_deployment):
    ident = running_deployment()
    before = client.get(f"/api/deployments/{ident}/webhook").get_json()
    assert before["enabled"] is False and before["secret"] is None
    response = client.post(f"/api/deployments/{ident}/webhook")
    assert response.status_code == 201
    body = response.get_json()
    assert body["enabled"] is True
    assert len(body["secret"]) == 64 and int(body["secret"], 16) >= 0
    assert body["url"].endswith(f"/api/webhooks/github/{ident}")
    assert body["events"] == ["push"]
    shown = client.get(f"/api/deployments/{ident}/webhook")
    assert shown.status_code == 200
    assert shown.get_json()["enabled"] is True
    assert shown.get_json()["url"] == body["url"]
    assert shown.get_json()["secret"] is None
    assert body["secret"] not in shown.get_data(as_text=True)
    deployment = client.get(f"/api/deployments/{ident}")
    assert deployment.get_json()["deployment"]["webhook_enabled"] is True
    assert body["secret"] not in deployment.get_data(as_text=True)


def test_the_secret_is_stored_encrypted_not_in_clear(client, hooked):
    ident, secret = hooked
    db.session.rollback()
    stored = Deployment.get_by_id(ident).webhook_secret_encrypted
    assert stored and secret not in stored


def test_disabling_turns_the_webhook_off_and_refuses_the_old_secret(client, hooked):
    ident, secret = hooked
    response = client.delete(f"/api/deployments/{ident}/webhook")
    assert response.status_code == 200
    assert response.get_json()["enabled"] is False and response.get_json()["secret"] is None
    assert client.get(f"/api/deployments/{ident}/webhook").get_json()["enabled"] is False
    refused = deliver(client, ident, secret)
    assert refused.status_code == 401
    assert error_of(refused)["message"] == BAD_SIGNATURE
    assert_nothing_happened(client, ident)


def test_re_enabling_issues_a_new_secret_and_the_old_one_is_refused(client, hooked):
    ident, old = hooked
    new = client.post(f"/api/deployments/{ident}/webhook").get_json()["secret"]
    assert new != old
    refused = deliver(client, ident, old)
    assert refused.status_code == 401
    assert error_of(refused)["message"] == BAD_SIGNATURE
    assert_nothing_happened(client, ident)
    assert deliver(client, ident, new).status_code == 202


def test_another_member_cannot_see_or_change_the_webhook(app, client, hooked):
    ident, _ = hooked
    _, member = make_user(app, "mallory", "member")
    db.session.rollback()  # the requests share this session: let it see the new user (MariaDB's repeatable read)
    assert client.get(f"/api/deployments/{ident}/webhook", token=member).status_code == 404
    assert client.post(f"/api/deployments/{ident}/webhook", token=member).status_code == 404
    assert client.delete(f"/api/deployments/{ident}/webhook", token=member).status_code == 404
    assert client.get(f"/api/deployments/{ident}/webhook").get_json()["enabled"] is True


def test_managing_the_webhook_needs_a_token(client, hooked):
    ident, _ = hooked
    assert client.get(f"/api/deployments/{ident}/webhook", token=None).status_code == 401
    assert client.post(f"/api/deployments/{ident}/webhook", token=None).status_code == 401


def test_a_deleted_deployment_cannot_get_a_webhook(client, make_deployment, delete_deployment):
    ident = make_deployment()["id"]
    delete_deployment(ident)
    assert status_of(client, ident) == "deleted"
    response = client.post(f"/api/deployments/{ident}/webhook")
    assert response.status_code == 409
    assert error_of(response)["code"] == "invalid_state"


# -- a push that deploys ---------------------------------------------------------------------------------


def test_a_signed_push_queues_a_release_of_the_pushed_commit(app, client, hooked):
    ident, secret = hooked
    response = deliver(client, ident, secret)
    assert response.status_code == 202
    body = response.get_json()
    assert body["success"] is True and body["status"] == "deploying" and body["release"] == 1
    assert "release 1" in body["message"]
    [release] = releases_of(client, ident)
    assert release["version"] == 1
    assert release["status"] == "queued"
    assert release["reason"] == "redeploy"
    assert release["branch"] == "main"
    assert release["requested_commit"] == COMMIT
    assert status_of(client, ident) == "deploying"
    assert ("provision", uuid.UUID(ident)) in platform_of(app).jobs.queue


def test_the_webhook_needs_no_bearer_token_and_ignores_a_bad_one(client, hooked):
    ident, secret = hooked
    response = deliver(client, ident, secret, headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 202
    assert response.get_json()["status"] == "deploying"


def test_the_delivery_is_recorded_with_its_outcome(client, hooked):
    ident, secret = hooked
    delivery = str(uuid.uuid4())
    deliver(client, ident, secret, delivery=delivery)
    [row] = delivery_rows(ident)
    assert row.delivery_id == delivery
    assert row.event == "push"
    assert row.outcome.startswith("deploying")


def test_the_audit_log_has_a_webhook_deploying_entry(client, hooked):
    ident, secret = hooked
    delivery = str(uuid.uuid4())
    deliver(client, ident, secret, delivery=delivery)
    response = client.get("/api/audit", query_string={"action": "webhook.deploying"})
    assert response.status_code == 200
    [entry] = response.get_json()["entries"]
    assert entry["action"] == "webhook.deploying"
    assert entry["deployment_id"] == ident
    assert entry["target"] == "shop-api"
    assert entry["user_id"] is None and entry["username"] is None
    assert entry["details"]["delivery"] == delivery
    assert entry["details"]["commit"] == COMMIT
    assert "release 1" in entry["details"]["message"]


def test_a_form_encoded_delivery_works_like_json(client, hooked):
    ident, secret = hooked
    body = urlencode({"payload": json.dumps(push_payload(after=OTHER_COMMIT))}).encode()
    response = deliver(client, ident, secret, body=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["status"] == "deploying"
    [release] = releases_of(client, ident)
    assert release["requested_commit"] == OTHER_COMMIT


def test_a_push_naming_the_repository_only_by_its_clone_url_still_deploys(client, hooked):
    ident, secret = hooked
    payload = push_payload(repository={"clone_url": "https://github.com/ACME/Shop-API.git"})
    response = deliver(client, ident, secret, payload)
    assert response.status_code == 202
    assert releases_of(client, ident)[0]["requested_commit"] == COMMIT


# -- deliveries that are refused ---------------------------------------------------------------------------


def test_a_bad_signature_is_401_and_nothing_happens(client, hooked):
    ident, _ = hooked
    response = deliver(client, ident, None, signature="sha256=" + "0" * 64)
    assert response.status_code == 401
    error = error_of(response)
    assert error["code"] == "unauthorized"
    assert error["message"] == BAD_SIGNATURE
    assert_nothing_happened(client, ident)
    assert client.get("/api/audit", query_string={"action": "webhook."}).get_json()["entries"] == []


def test_a_missing_signature_is_401_and_nothing_happens(client, hooked):
    ident, _ = hooked
    response = deliver(client, ident, None)
    assert response.status_code == 401
    assert error_of(response)["message"] == BAD_SIGNATURE
    assert_nothing_happened(client, ident)


def test_a_signature_made_with_another_secret_is_401(client, hooked):
    ident, secret = hooked
    response = deliver(client, ident, "f" * 64)
    assert response.status_code == 401
    assert error_of(response)["message"] == BAD_SIGNATURE
    assert_nothing_happened(client, ident)


@pytest.mark.parametrize("mangle", [
    pytest.param(lambda sig: sig.removeprefix("sha256="), id="without-prefix"),
    pytest.param(lambda sig: "sha1=" + sig.removeprefix("sha256="), id="sha1-prefix"),
    pytest.param(lambda sig: sig.upper(), id="upper-case"),
    pytest.param(lambda sig: sig[:-2], id="truncated"),
    pytest.param(lambda sig: sig + " ", id="trailing-space"),
    pytest.param(lambda sig: "", id="empty"),
])
def test_a_malformed_signature_is_401(client, hooked, mangle):
    ident, secret = hooked
    body = json.dumps(push_payload()).encode()
    response = deliver(client, ident, None, body=body, signature=mangle(sha256_signature(secret, body)))
    assert response.status_code == 401
    assert_nothing_happened(client, ident)


def test_a_body_changed_after_signing_is_401(client, hooked):
    ident, secret = hooked
    signed = json.dumps(push_payload()).encode()
    tampered = json.dumps(push_payload(after=OTHER_COMMIT)).encode()
    response = deliver(client, ident, None, body=tampered, signature=sha256_signature(secret, signed))
    assert response.status_code == 401
    assert_nothing_happened(client, ident)


def test_an_unknown_deployment_is_401_with_the_same_message_as_a_bad_signature(client, hooked):
    ident, secret = hooked
    for unknown in (str(uuid.uuid4()), "shop-api", "not-a-uuid"):
        response = deliver(client, unknown, secret)
        assert response.status_code == 401
        assert error_of(response)["message"] == BAD_SIGNATURE
    assert_nothing_happened(client, ident)


def test_a_deployment_without_a_webhook_is_401_with_the_same_message(client, running_deployment):
    ident = running_deployment()
    response = deliver(client, ident, "a" * 64)
    assert response.status_code == 401
    assert error_of(response)["message"] == BAD_SIGNATURE
    assert_nothing_happened(client, ident)


def test_a_deleted_deployment_refuses_deliveries_signed_with_its_old_secret(client, make_deployment,
                                                                            delete_deployment):
    ident = make_deployment()["id"]
    secret = client.post(f"/api/deployments/{ident}/webhook").get_json()["secret"]
    delete_deployment(ident)
    assert status_of(client, ident) == "deleted"
    response = deliver(client, ident, secret)
    assert response.status_code == 401
    assert error_of(response)["message"] == BAD_SIGNATURE
    assert releases_of(client, ident) == []


def test_a_signed_delivery_without_a_delivery_id_is_422_and_recorded_nowhere(client, hooked):
    ident, secret = hooked
    response = client.post(f"/api/webhooks/github/{ident}", data=json.dumps(push_payload()).encode(),
                           content_type="application/json", token=None,
                           headers={"X-GitHub-Event": "push",
                                    "X-Hub-Signature-256": sha256_signature(secret, json.dumps(push_payload())
                                                                            .encode())})
    assert response.status_code == 422
    assert "X-GitHub-Delivery" in error_of(response)["fields"]
    assert_nothing_happened(client, ident)


def test_a_signed_body_that_is_not_json_is_400_like_every_malformed_body(client, hooked):
    ident, secret = hooked
    response = deliver(client, ident, secret, body=b"{not json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "malformed_json"
    assert delivery_rows(ident) == []
    assert releases_of(client, ident) == []
    assert status_of(client, ident) == "running"


# -- deliveries that do nothing ----------------------------------------------------------------------------


def test_the_same_delivery_id_twice_deploys_once(client, hooked):
    ident, secret = hooked
    delivery = str(uuid.uuid4())
    first = deliver(client, ident, secret, delivery=delivery)
    assert first.status_code == 202
    second = deliver(client, ident, secret, delivery=delivery)
    assert second.status_code == 200
    assert second.get_json()["status"] == "duplicate"
    assert second.get_json()["release"] is None
    assert delivery in second.get_json()["message"]
    assert len(releases_of(client, ident)) == 1
    assert len(delivery_rows(ident)) == 1


def test_a_ping_answers_pong(client, hooked):
    ident, secret = hooked
    response = deliver(client, ident, secret, {"zen": "Keep it logically awesome.", "hook_id": 1}, event="ping")
    assert response.status_code == 200
    assert response.get_json()["status"] == "pong"
    assert releases_of(client, ident) == []
    assert status_of(client, ident) == "running"
    [row] = delivery_rows(ident)
    assert row.event == "ping" and row.outcome.startswith("pong")


def test_an_issues_event_is_ignored(client, hooked):
    ident, secret = hooked
    response = deliver(client, ident, secret, {"action": "opened", "issue": {"number": 1}}, event="issues")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ignored"
    assert "issues" in body["message"]
    assert releases_of(client, ident) == []
    assert status_of(client, ident) == "running"


@pytest.mark.parametrize("payload,reason", [
    pytest.param(push_payload(ref="refs/heads/develop"), "not to branch main", id="another-branch"),
    pytest.param(push_payload(ref="refs/tags/v1.0.0"), "not to branch main", id="a-tag"),
    pytest.param(push_payload(repository={"html_url": "https://github.com/acme/other",
                                          "full_name": "acme/other",
                                          "clone_url": "https://github.com/acme/other.git"}),
                 "another repository", id="another-repository"),
    pytest.param(push_payload(repository={"html_url": "https://github.com/evil/shop-api",
                                          "full_name": "evil/shop-api"}),
                 "another repository", id="a-fork"),
    pytest.param(push_payload(deleted=True, after="0" * 40), "deleted", id="branch-deletion"),
    pytest.param(push_payload(after="0" * 40), "no commit", id="zero-commit"),
    pytest.param(push_payload(after="not-a-sha; rm -rf /"), "no commit", id="malformed-commit"),
])
def test_a_push_elsewhere_is_ignored_without_a_release(client, hooked, payload, reason):
    ident, secret = hooked
    response = deliver(client, ident, secret, payload)
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ignored" and body["release"] is None
    assert reason in body["message"]
    assert releases_of(client, ident) == []
    assert status_of(client, ident) == "running"
    entries = client.get("/api/audit", query_string={"action": "webhook.ignored"}).get_json()["entries"]
    assert [e["deployment_id"] for e in entries] == [ident]


def test_a_push_to_a_deployment_on_another_branch_follows_that_branch(client, running_deployment):
    ident = running_deployment(branch="release/2.1")
    secret = client.post(f"/api/deployments/{ident}/webhook").get_json()["secret"]
    assert deliver(client, ident, secret).get_json()["status"] == "ignored"
    response = deliver(client, ident, secret, push_payload(ref="refs/heads/release/2.1"))
    assert response.status_code == 202
    [release] = releases_of(client, ident)
    assert release["branch"] == "release/2.1" and release["requested_commit"] == COMMIT


def test_a_push_while_the_deployment_is_pending_answers_409_and_can_be_redelivered(client, make_deployment):
    ident = make_deployment()["id"]
    secret = client.post(f"/api/deployments/{ident}/webhook").get_json()["secret"]
    delivery = str(uuid.uuid4())
    response = deliver(client, ident, secret, delivery=delivery)
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "deployment_busy" and "pending" in error["message"] and "redeliver" in error["message"]
    assert releases_of(client, ident) == []
    assert status_of(client, ident) == "pending"
    assert delivery_rows(ident) == []  # nothing recorded: GitHub's "Redeliver" will be taken later
    assert deliver(client, ident, secret, delivery=delivery).status_code == 409


def test_a_second_push_while_deploying_answers_409_and_is_not_recorded(client, hooked):
    ident, secret = hooked
    assert deliver(client, ident, secret).status_code == 202
    response = deliver(client, ident, secret, push_payload(after=OTHER_COMMIT))
    assert response.status_code == 409
    assert "deploying" in response.get_json()["error"]["message"]
    assert [r["requested_commit"] for r in releases_of(client, ident)] == [COMMIT]
    assert len(delivery_rows(ident)) == 1


def test_a_replayed_push_with_a_new_delivery_id_does_not_rebuild(client, hooked):
    ident, secret = hooked
    assert deliver(client, ident, secret).status_code == 202
    replay = deliver(client, ident, secret, delivery=str(uuid.uuid4()))
    assert replay.status_code == 200 and replay.get_json()["status"] == "ignored"
    assert "already" in replay.get_json()["message"]
    assert len(releases_of(client, ident)) == 1


def test_a_disabled_owners_deployment_takes_no_pushes(app, client, hooked):
    ident, secret = hooked
    owner_id, _ = make_user(app, "alice")
    db.session.rollback()
    Deployment.get_by_id(ident).user_id = owner_id
    db.session.commit()
    assert client.patch(f"/api/users/{owner_id}", json={"disabled": True}).status_code == 200
    response = deliver(client, ident, secret)
    assert response.status_code == 401 and response.get_json()["error"]["message"] == BAD_SIGNATURE
    assert releases_of(client, ident) == []


def test_deliveries_are_counted_per_deployment(client, hooked, running_deployment):
    ident, secret = hooked
    other = running_deployment(name="other-api")
    other_secret = client.post(f"/api/deployments/{other}/webhook").get_json()["secret"]
    assert deliver(client, other, secret).status_code == 401  # one deployment's secret is not another's
    assert deliver(client, other, other_secret).status_code == 202
    assert releases_of(client, ident) == []
    assert status_of(client, ident) == "running"
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(GithubDelivery)) == 1
