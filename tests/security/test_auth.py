"""Authentication: every /api route but the public allow-list needs a valid bearer token."""
import re
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update

from app import db
from backend.api.auth import PUBLIC_ENDPOINTS
from backend.models import ApiToken, AuditEntry, User
from backend.models.types import utcnow
from backend.services import passwords
from manage_db import cli
from tests.helpers.accounts import make_user

# Routes outside /api (or the docs pages spectree adds) that need no token, and why: the health check, the
# dashboard's assets and its login form. The dashboard's other pages need a session instead (walked below).
PUBLIC_OUTSIDE_API = {"health.health", "web.static", "web.login"}
DASHBOARD_PREFIX = "web."
DOCS_PREFIX = "openapi_"


def concrete_path(rule):
    """A URL for the rule with a plausible value in each variable (ids that exist nowhere)."""
    values = {"action": "stop", "version": "1", "deployment_id": str(uuid.uuid4())}
    path = rule.rule
    for name in rule.arguments:
        path = re.sub(rf"<(?:[a-z]+:)?{name}>", values.get(name, str(uuid.uuid4())), path)
    return re.sub(r"<[^>]+>", "x", path)


def protected_requests(app):
    """(method, path, endpoint) of every route that must refuse a request without a valid token."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_ENDPOINTS or rule.endpoint in PUBLIC_OUTSIDE_API \
                or rule.endpoint.startswith((DOCS_PREFIX, DASHBOARD_PREFIX)):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((method, concrete_path(rule), rule.endpoint))
    return found


def send(client, method, path, **kwargs):
    return client.open(path, method=method, json={} if method in ("POST", "PUT", "PATCH") else None, **kwargs)


def test_the_public_allow_list_is_exactly_the_documented_one(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    public = {e for e in endpoints if e in PUBLIC_ENDPOINTS or e in PUBLIC_OUTSIDE_API or e.startswith(DOCS_PREFIX)}
    assert public - {e for e in public if e.startswith(DOCS_PREFIX)} == {
        "health.health", "web.static", "web.login", "api.openapi_document", "api.github_webhook", "api.login"}
    # Every other /api endpoint is protected, and there are many of them.
    assert len(protected_requests(app)) >= 35
    assert all(path.startswith("/api/") for _, path, _ in protected_requests(app))


@pytest.mark.parametrize("credentials", ["none", "malformed", "unknown", "revoked", "expired", "disabled-user"])
def test_every_route_outside_the_allow_list_refuses_a_request_without_a_valid_token(app, client, credentials):
    member_id, token = make_user(app, "mallory")
    with app.app_context():
        if credentials == "revoked":
            db.session.execute(update(ApiToken).where(ApiToken.user_id == member_id).values(revoked_at=utcnow()))
        elif credentials == "expired":
            db.session.execute(update(ApiToken).where(ApiToken.user_id == member_id)
                               .values(expires_at=utcnow() - timedelta(seconds=1)))
        elif credentials == "disabled-user":
            db.session.execute(update(User).where(User.id == member_id).values(disabled_at=utcnow()))
        db.session.commit()
        db.session.remove()
    sent = {"none": None, "malformed": "not-a-token", "unknown": "paas_" + "A" * 43}.get(credentials, token)
    # Before: the token works where it should (so the refusals below are about the credential).
    if credentials in ("revoked", "expired", "disabled-user"):
        assert client.get("/api/me", token=make_user(app, "control")[1]).status_code == 200
    for method, path, endpoint in protected_requests(app):
        response = send(client, method, path, token=sent)
        assert response.status_code == 401, (method, path, endpoint, response.status_code)
        body = response.get_json()
        assert body["success"] is False and body["error"]["code"] == "unauthorized", (method, path)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_every_dashboard_page_but_the_login_sends_a_visitor_without_a_session_to_the_login_page(app, client):
    """A bearer token is no session: the dashboard's pages want a login, its forms a CSRF token first."""
    token = make_user(app, "mallory")[1]
    pages = [rule for rule in app.url_map.iter_rules()
             if rule.endpoint.startswith(DASHBOARD_PREFIX) and rule.endpoint not in PUBLIC_OUTSIDE_API]
    assert len(pages) >= 20
    for rule in pages:
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(concrete_path(rule), method=method, token=token)
            if method == "GET":
                assert response.status_code == 302, (rule.endpoint, response.status_code)
                assert response.headers["Location"].startswith("/login?next="), rule.endpoint
            else:
                assert response.status_code == 400, (rule.endpoint, method, response.status_code)
                assert "could not be accepted" in response.get_data(as_text=True)


def test_a_non_bearer_authorization_scheme_is_refused(client):
    response = client.get("/api/deployments", headers={"Authorization": "Basic YWRtaW46YWRtaW4="})
    assert response.status_code == 401


def test_an_unauthenticated_request_learns_nothing_about_its_body(client):
    response = client.post("/api/deployments", data="{not json", content_type="text/plain", token=None)
    assert response.status_code == 401


def test_public_routes_answer_without_a_token(client):
    assert client.get("/health", token=None).status_code == 200
    assert client.get("/api/openapi.json", token=None).status_code == 200
    spec = client.get("/api/openapi.json", token=None).get_json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    # The login is reached without a token: it refuses the credentials, not the missing token.
    login = client.post("/api/auth/login", json={"username": "x", "password": "y", "token_name": "z"}, token=None)
    assert login.status_code == 401 and login.get_json()["error"]["message"] == "invalid username or password"
    assert spec["paths"]["/api/auth/login"]["post"]["security"] == []


def test_a_token_is_shown_once_listed_by_prefix_and_stored_as_a_hash(app, client):
    _, member = make_user(app, "alice")
    created = client.post("/api/tokens", json={"name": "laptop", "expires_in_days": 30}, token=member)
    assert created.status_code == 201
    token = created.get_json()["token"]
    info = created.get_json()["token_info"]
    assert token.startswith("paas_") and len(token) == 48
    assert info["prefix"] == token[:12] and info["name"] == "laptop" and info["expires_at"]
    listed = client.get("/api/tokens", token=member)
    assert listed.status_code == 200
    assert token not in listed.get_data(as_text=True)
    assert {t["name"] for t in listed.get_json()["tokens"]} == {"tests", "laptop"}
    with app.app_context():
        stored = db.session.scalars(db.select(ApiToken.token_hash)).all()
        assert token not in stored and all(len(h) == 64 for h in stored)
    # The new token works, and records its use.
    me = client.get("/api/me", token=token).get_json()
    assert me["user"]["username"] == "alice"
    assert client.get("/api/tokens", token=token).get_json()["tokens"][0]["last_used_at"] is not None


def test_a_revoked_token_stops_working_at_once_and_revoking_is_idempotent(app, client):
    _, member = make_user(app, "alice")
    created = client.post("/api/tokens", json={"name": "ci"}, token=member).get_json()
    token, token_id = created["token"], created["token_info"]["id"]
    assert client.get("/api/deployments", token=token).status_code == 200
    first = client.delete(f"/api/tokens/{token_id}", token=member)
    assert first.status_code == 200 and first.get_json()["token_info"]["revoked_at"]
    assert client.get("/api/deployments", token=token).status_code == 401
    assert client.delete(f"/api/tokens/{token_id}", token=member).status_code == 200


def test_a_token_can_revoke_itself(client, app):
    _, member = make_user(app, "alice")
    token_id = client.get("/api/tokens", token=member).get_json()["tokens"][0]["id"]
    assert client.delete(f"/api/tokens/{token_id}", token=member).status_code == 200
    assert client.get("/api/me", token=member).status_code == 401


def test_another_users_token_cannot_be_revoked_or_seen(app, client):
    _, alice = make_user(app, "alice")
    _, bob = make_user(app, "bob")
    alice_token_id = client.get("/api/tokens", token=alice).get_json()["tokens"][0]["id"]
    assert client.delete(f"/api/tokens/{alice_token_id}", token=bob).status_code == 404
    assert alice_token_id not in client.get("/api/tokens", token=bob).get_data(as_text=True)
    assert client.get("/api/me", token=alice).status_code == 200


def test_token_bodies_are_validated_strictly(app, client):
    _, member = make_user(app, "alice")
    assert client.post("/api/tokens", json={"name": "x", "user_id": "someone"}, token=member).status_code == 422
    assert client.post("/api/tokens", json={"name": ""}, token=member).status_code == 422
    assert client.post("/api/tokens", json={"name": "x", "expires_in_days": 0}, token=member).status_code == 422


def test_members_cannot_manage_users_or_read_the_audit_log(app, client):
    member_id, member = make_user(app, "alice")
    assert client.get("/api/users", token=member).status_code == 403
    assert client.post("/api/users", json={"username": "eve"}, token=member).status_code == 403
    assert client.patch(f"/api/users/{member_id}", json={"role": "admin"}, token=member).status_code == 403
    assert client.get("/api/audit", token=member).status_code == 403
    assert client.get("/api/me", token=member).get_json()["user"]["role"] == "member"


def test_an_admin_creates_users_with_a_first_token_and_can_disable_them(app, client):
    created = client.post("/api/users", json={"username": "carol", "quotas": {"deployments": 3}})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["user"]["role"] == "member" and body["user"]["quota_overrides"]["deployments"] == 3
    token = body["token"]
    assert client.get("/api/me", token=token).get_json()["quotas"]["deployments"] == 3
    assert client.post("/api/users", json={"username": "carol"}).status_code == 409
    disabled = client.patch(f"/api/users/{body['user']['id']}", json={"disabled": True})
    assert disabled.status_code == 200 and disabled.get_json()["user"]["disabled_at"]
    assert client.get("/api/me", token=token).status_code == 401
    # Enabling the user again does not bring revoked tokens back.
    client.patch(f"/api/users/{body['user']['id']}", json={"disabled": False})
    assert client.get("/api/me", token=token).status_code == 401


def test_the_last_admin_cannot_be_demoted_or_disabled(app, client):
    admin = client.get("/api/me").get_json()["user"]
    assert client.patch(f"/api/users/{admin['id']}", json={"role": "member"}).status_code == 409
    assert client.patch(f"/api/users/{admin['id']}", json={"disabled": True}).status_code == 409
    assert client.get("/api/me").status_code == 200


def test_create_user_command_prints_a_working_admin_token(app):
    result = app.test_cli_runner().invoke(cli, ["create-user", "root-admin", "--admin"], obj=app)
    assert result.exit_code == 0, result.output
    db.session.rollback()
    token = result.stdout.strip().splitlines()[-1]
    client = app.test_client()
    me = client.get("/api/me", token=token)
    assert me.status_code == 200 and me.get_json()["user"] == {**me.get_json()["user"], "role": "admin",
                                                                "username": "root-admin"}
    assert client.get("/api/users", token=token).status_code == 200
    duplicate = app.test_cli_runner().invoke(cli, ["create-user", "root-admin"], obj=app)
    assert duplicate.exit_code != 0 and "already exists" in duplicate.output
    again = app.test_cli_runner().invoke(cli, ["create-token", "root-admin", "--name", "spare"], obj=app)
    db.session.rollback()  # the test's own session: end its snapshot (MariaDB's repeatable read)
    assert again.exit_code == 0 and client.get("/api/me", token=again.stdout.strip()).status_code == 200
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(AuditEntry)
                                 .where(AuditEntry.action == "user.create")) == 1


def test_setup_creates_the_first_admin_only_on_a_database_without_users(app):
    db.session.execute(db.delete(ApiToken))
    db.session.execute(db.delete(User))
    db.session.commit()
    runner = app.test_cli_runner()
    first = runner.invoke(cli, ["create-user", "admin", "--admin", "--if-no-users"], obj=app)
    assert first.exit_code == 0 and first.stdout.strip().startswith("paas_")
    second = runner.invoke(cli, ["create-user", "admin", "--admin", "--if-no-users"], obj=app)
    assert second.exit_code == 0 and second.stdout.strip() == "" and "Users exist already" in second.stderr


def test_setup_writes_the_first_admins_dashboard_password_to_a_private_file_and_never_prints_it(app, tmp_path):
    db.session.execute(db.delete(ApiToken))
    db.session.execute(db.delete(User))
    db.session.commit()
    runner = app.test_cli_runner()
    target = tmp_path / "instance" / "admin-password"
    result = runner.invoke(cli, ["create-user", "admin", "--admin", "--if-no-users", "--password-file", str(target)],
                           obj=app)
    assert result.exit_code == 0, result.output
    password = target.read_text().strip()
    assert len(password) >= 20 and target.stat().st_mode & 0o777 == 0o600
    assert password not in result.stdout and password not in result.stderr
    assert passwords.verify_password("admin", password) is not None
    assert str(target) in result.stderr


def test_a_password_file_that_cannot_be_written_leaves_no_user_behind(app, tmp_path):
    db.session.execute(db.delete(ApiToken))
    db.session.execute(db.delete(User))
    db.session.commit()
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the folder should be")
    result = app.test_cli_runner().invoke(
        cli, ["create-user", "admin", "--admin", "--if-no-users", "--password-file", str(blocked / "admin-password")],
        obj=app)
    assert result.exit_code != 0 and "cannot write" in result.stderr
    assert "Traceback" not in result.output
    assert db.session.scalar(db.select(db.func.count()).select_from(User)) == 0
