"""The dashboard's account page (API tokens, password) and admin pages (users, audit log, nodes): the API's rules,
its audit actions (with via=dashboard), sessions that end when they should, and nothing of it for members."""
import re
import uuid

import pytest

from app import db
from backend.models import ApiToken, User
from backend.services import accounts, audit, web_sessions
from backend.web import admin
from tests.helpers.accounts import make_user
from tests.helpers.apps import create_test_app
from tests.web.helpers import PASSWORD, csrf_of, login, new_token_of, post_form, text_of

NEW_PASSWORD = "a brand new horse battery staple"
REVOKE_RE = re.compile(r'action="/account/tokens/([0-9a-f-]+)/revoke"')


@pytest.fixture
def alice(app):
    make_user(app, "alice", password=PASSWORD)
    return "alice"


@pytest.fixture
def boss(app):
    """An admin with a password (the suite's own admin, test-admin, has none)."""
    make_user(app, "boss", "admin", password=PASSWORD)
    return "boss"


def audit_entries(client, action):
    response = client.get(f"/api/audit?action={action}")
    assert response.status_code == 200
    return response.get_json()["entries"]


def field_error(page, name):
    """The message shown beside field name, or None."""
    match = re.search(rf'<small class="field-error" id="{name}-error">([^<]*)</small>', text_of(page))
    return match.group(1) if match else None


def user_row(app, username):
    with app.app_context():
        user = User.get_by_username(username)
        db.session.expunge(user)
    return user


def create_token(client, name="laptop", expires_in_days=""):
    return post_form(client, "/account/tokens", {"name": name, "expires_in_days": expires_in_days},
                     page="/account")


# -- API tokens -------------------------------------------------------------------------------------------


def test_a_new_token_is_shown_once_and_authenticates(app, client, web_login, alice):
    web_login(client, alice, PASSWORD)

    response = create_token(client, expires_in_days="30")

    assert response.status_code == 201, text_of(response)
    token = new_token_of(response)
    assert token and token.startswith("paas_")
    assert "Copy it now, it is not shown again" in text_of(response)
    me = client.get("/api/me", token=token)
    assert me.status_code == 200 and me.get_json()["user"]["username"] == "alice"
    again = client.get("/account")
    assert again.status_code == 200
    assert token not in text_of(again) and new_token_of(again) is None
    assert token[:12] in text_of(again) and "laptop" in text_of(again)
    [entry] = audit_entries(client, "token.create")
    assert entry["username"] == "alice" and entry["target"] == f"token {token[:12]}"
    assert entry["details"]["via"] == "dashboard" and entry["details"]["name"] == "laptop"
    assert entry["details"]["expires_at"]


def test_a_bad_token_name_is_refused_beside_the_field(client, web_login, alice):
    web_login(client, alice, PASSWORD)

    response = create_token(client, name="no/slashes", expires_in_days="0")

    assert response.status_code == 422
    assert field_error(response, "name") and field_error(response, "expires_in_days")
    assert new_token_of(response) is None
    assert 'value="no/slashes"' in text_of(response)


def test_revoking_a_token_stops_it_at_once(client, web_login, alice):
    web_login(client, alice, PASSWORD)
    page = create_token(client)
    token = new_token_of(page)
    [token_id] = REVOKE_RE.findall(text_of(client.get("/account")))[:1]

    response = post_form(client, f"/account/tokens/{token_id}/revoke", page="/account")

    assert response.status_code == 302 and response.headers["Location"].endswith("/account")
    assert client.get("/api/me", token=token).status_code == 401
    account = client.get("/account")
    assert "is revoked" in text_of(account)
    assert f"/account/tokens/{token_id}/revoke" not in text_of(account)  # no button for a revoked token
    [entry] = audit_entries(client, "token.revoke")
    assert entry["username"] == "alice" and entry["details"] == {"via": "dashboard", "name": "laptop"}


def test_another_users_token_cannot_be_revoked(app, client, web_login, alice):
    _, bobs_token = make_user(app, "bob")
    with app.app_context():
        bobs_id = str(ApiToken.find(bobs_token).id)
    web_login(client, alice, PASSWORD)

    response = post_form(client, f"/account/tokens/{bobs_id}/revoke", page="/account")

    assert response.status_code == 404
    assert client.get("/api/me", token=bobs_token).status_code == 200
    assert post_form(client, "/account/tokens/not-an-id/revoke", page="/account").status_code == 404
    assert audit_entries(client, "token.revoke") == []


def test_forms_without_the_csrf_token_are_refused(client, web_login, alice):
    web_login(client, alice, PASSWORD)

    assert client.post("/account/tokens", data={"name": "laptop"}).status_code == 400
    assert client.post("/account/password", data={"new_password": NEW_PASSWORD}).status_code == 400


# -- password ---------------------------------------------------------------------------------------------


def change_password(client, current=PASSWORD, new=NEW_PASSWORD, repeat=None):
    return post_form(client, "/account/password", {"current_password": current, "new_password": new,
                                                   "new_password_repeat": new if repeat is None else repeat},
                     page="/account")


def test_a_wrong_current_password_is_refused_beside_the_field(app, client, web_login, alice):
    web_login(client, alice, PASSWORD)

    response = change_password(client, current="not my password at all")

    assert response.status_code == 422
    assert field_error(response, "current_password") == "does not match"
    assert 'id="current_password" name="current_password" type="password"' in text_of(response)
    assert NEW_PASSWORD not in text_of(response)
    assert login(app.test_client(), alice, PASSWORD).status_code == 302  # unchanged
    assert audit_entries(client, "user.password_changed") == []


def test_the_repeat_must_match_and_the_policy_applies(client, web_login, alice):
    web_login(client, alice, PASSWORD)

    differ = change_password(client, repeat=NEW_PASSWORD + "!")
    short = change_password(client, new="short")

    assert differ.status_code == 422
    assert field_error(differ, "new_password_repeat") == "does not match the new password"
    assert short.status_code == 422
    assert "at least 12" in field_error(short, "new_password")


def test_a_change_logs_out_the_other_sessions_of_the_user(app, client, web_login, alice):
    web_login(client, alice, PASSWORD)
    elsewhere = app.test_client()
    web_login(elsewhere, alice, PASSWORD)
    _, bobs_token = make_user(app, "bob", password=PASSWORD)
    bob = app.test_client()
    web_login(bob, "bob", PASSWORD)

    response = change_password(client)

    assert response.status_code == 302 and response.headers["Location"].endswith("/account")
    page = client.get("/account")
    assert page.status_code == 200
    assert "Password changed; your other dashboard sessions are logged out." in text_of(page)
    gone = elsewhere.get("/account")
    assert gone.status_code == 302 and "/login" in gone.headers["Location"]
    assert bob.get("/account").status_code == 200  # another user's session stays
    assert login(app.test_client(), alice, PASSWORD).status_code == 401
    assert login(app.test_client(), alice, NEW_PASSWORD).status_code == 302
    [entry] = audit_entries(client, "user.password_changed")
    assert entry["username"] == "alice" and entry["target"] == "user alice"
    assert entry["details"] == {"via": "dashboard"}


def test_a_user_without_a_password_sets_one_without_the_current_field(app, client, web_login, alice):
    # Only an admin or a token gives a user without a password a way in: an admin's session stands for it here.
    make_user(app, "dora")
    with app.app_context():
        user = User.get_by_username("dora")
        session_id, _ = web_sessions.open_session(user, lifetime_hours=1)
        db.session.remove()
    with client.session_transaction() as cookie:
        cookie["sid"] = session_id

    page = client.get("/account")
    assert page.status_code == 200
    assert 'id="current_password"' not in text_of(page)
    response = client.post("/account/password", data={"csrf_token": csrf_of(page), "new_password": NEW_PASSWORD,
                                                      "new_password_repeat": NEW_PASSWORD})

    assert response.status_code == 302
    assert login(app.test_client(), "dora", NEW_PASSWORD).status_code == 302


@pytest.fixture
def limited(database_url, unreachable_proxmox):
    """The app with rate limits on (the login's at its default, 5 per minute), counted apart from other tests."""
    app = create_test_app(SQLALCHEMY_DATABASE_URI=database_url, PROXMOX_SETTINGS=unreachable_proxmox,
                          RATELIMIT_ENABLED=True, RATELIMIT_KEY_PREFIX=f"web{uuid.uuid4().hex[:8]}")
    yield app
    with app.app_context():
        db.engine.dispose()


def test_password_changes_are_limited_like_logins(limited, web_login):
    make_user(limited, "alice", password=PASSWORD)
    client = limited.test_client()
    web_login(client, "alice", PASSWORD)

    codes = [change_password(client, current="wrong wrong wrong").status_code for _ in range(4)]
    slowed = change_password(client)

    # The login was the first of alice's five tries this minute (logins and password changes count together).
    assert codes == [422] * 4
    assert slowed.status_code == 429 and 0 < int(slowed.headers["Retry-After"]) <= 60
    assert "Too many attempts" in text_of(slowed)
    assert client.get("/account").status_code == 200  # the page itself is not limited
    # The count is alice's, not the session's: a login as her from another address waits too.
    elsewhere = login(limited.test_client(), "alice", PASSWORD, environ_base={"REMOTE_ADDR": "198.51.100.9"})
    assert elsewhere.status_code == 429


# -- admin pages: who sees them ---------------------------------------------------------------------------


ADMIN_PAGES = ("/admin/users", "/admin/users/alice", "/admin/audit", "/admin/nodes")


def test_a_member_finds_no_admin_page(client, web_login, alice):
    csrf = web_login(client, alice, PASSWORD)

    for path in ADMIN_PAGES:
        response = client.get(path)
        assert response.status_code == 404, path
        assert "Not found" in text_of(response)
    token = csrf("/account")
    for path in ("/admin/users", "/admin/users/alice/role", "/admin/users/alice/disabled",
                 "/admin/users/alice/password"):
        response = client.post(path, data={"csrf_token": token, "role": "admin", "username": "mallory",
                                           "disabled": "true", "password": NEW_PASSWORD})
        assert response.status_code == 404, path
    assert user_row(client.application, "alice").role == "member"
    assert "Admin" not in text_of(client.get("/account")).split("<main")[0]


def test_admin_pages_show_for_an_admin_with_their_navigation(client, web_login, boss, alice):
    web_login(client, boss, PASSWORD)

    for path, label in (("/admin/users", "Users"), ("/admin/audit", "Audit log"), ("/admin/nodes", "Nodes")):
        page = text_of(client.get(path))
        assert f'aria-current="page">{label}</a>' in page, path
        assert '<nav aria-label="Admin sections"' in page
    user_page = client.get("/admin/users/alice")
    assert user_page.status_code == 200 and "Disable alice" in text_of(user_page)
    assert client.get("/admin/users/nobody").status_code == 404


def test_the_nodes_page_says_when_proxmox_does_not_answer(client, web_login, boss):
    web_login(client, boss, PASSWORD)

    response = client.get("/admin/nodes")

    assert response.status_code == 200
    assert "Proxmox did not answer" in text_of(response)


# -- admin: users -----------------------------------------------------------------------------------------


def test_an_admin_creates_a_user_shown_their_token_once_then_disables_them(app, client, web_login, boss):
    web_login(client, boss, PASSWORD)

    created = post_form(client, "/admin/users", {"username": "carol", "role": "member", "password": PASSWORD,
                                                 "quota_cores": "4", "quota_memory": ""})

    assert created.status_code == 201, text_of(created)
    token = new_token_of(created)
    assert client.get("/api/me", token=token).get_json()["user"]["username"] == "carol"
    assert token not in text_of(client.get("/admin/users"))
    carol = user_row(app, "carol")
    assert carol.max_cores == 4 and carol.max_memory is None and not carol.allow_private_targets
    [entry] = audit_entries(client, "user.create")
    assert entry["username"] == "boss" and entry["target"] == "user carol"
    assert entry["details"] == {"via": "dashboard", "role": "member", "quotas": {"cores": 4}}
    assert [e["target"] for e in audit_entries(client, "user.password_set")] == ["user carol"]

    carols = app.test_client()
    web_login(carols, "carol", PASSWORD)
    assert carols.get("/").status_code == 200

    disabled = post_form(client, "/admin/users/carol/disabled", {"disabled": "true"}, page="/admin/users/carol")

    assert disabled.status_code == 302
    assert "is disabled" in text_of(client.get("/admin/users/carol"))
    next_page = carols.get("/")
    assert next_page.status_code == 302 and "/login" in next_page.headers["Location"]
    assert client.get("/api/me", token=token).status_code == 401
    [update] = audit_entries(client, "user.update")
    assert update["details"] == {"via": "dashboard", "changes": {"disabled": True}}

    enabled = post_form(client, "/admin/users/carol/disabled", {"disabled": "false"}, page="/admin/users/carol")
    assert enabled.status_code == 302 and user_row(app, "carol").disabled_at is None
    web_login(carols, "carol", PASSWORD)


def test_creating_a_user_refuses_what_the_api_refuses_beside_the_fields(app, client, web_login, boss, alice):
    web_login(client, boss, PASSWORD)

    taken = post_form(client, "/admin/users", {"username": "alice", "role": "member"})
    bad = post_form(client, "/admin/users", {"username": "X", "role": "root", "password": "short",
                                             "quota_disk": "-1"})
    weak = post_form(client, "/admin/users", {"username": "erin", "password": "short"})

    assert taken.status_code == 409 and field_error(taken, "username") == "already taken"
    assert bad.status_code == 422
    assert field_error(bad, "username") and field_error(bad, "role") and field_error(bad, "quota_disk")
    assert weak.status_code == 422 and "at least 12" in field_error(weak, "password")
    assert new_token_of(weak) is None
    with app.app_context():
        assert User.get_by_username("erin") is None  # the password is checked before the user is made


def test_an_admin_changes_role_quotas_private_targets_and_password(app, client, web_login, boss, alice):
    web_login(client, boss, PASSWORD)
    alices = app.test_client()
    web_login(alices, alice, PASSWORD)
    page = "/admin/users/alice"

    assert post_form(client, f"{page}/quotas", {"quota_deployments": "3", "quota_cores": "", "quota_memory": "",
                                                "quota_disk": "20"}, page=page).status_code == 302
    assert post_form(client, f"{page}/private-targets", {"allow_private_targets": "on"}, page=page).status_code == 302
    assert post_form(client, f"{page}/role", {"role": "admin"}, page=page).status_code == 302
    refused = post_form(client, f"{page}/quotas", {"quota_cores": "many"}, page=page)
    mismatch = post_form(client, f"{page}/password", {"password": NEW_PASSWORD, "password_repeat": "other"},
                         page=page)
    set_password = post_form(client, f"{page}/password", {"password": NEW_PASSWORD,
                                                          "password_repeat": NEW_PASSWORD}, page=page)

    row = user_row(app, "alice")
    assert (row.max_deployments, row.max_cores, row.max_memory, row.max_disk) == (3, None, None, 20)
    assert row.allow_private_targets and row.role == "admin"
    assert refused.status_code == 422 and field_error(refused, "quota_cores")
    assert mismatch.status_code == 422 and field_error(mismatch, "password_repeat")
    assert set_password.status_code == 302
    assert alices.get("/").status_code == 302  # her sessions ended with the new password
    assert login(app.test_client(), alice, NEW_PASSWORD).status_code == 302
    changes = [e["details"]["changes"] for e in audit_entries(client, "user.update")]
    assert changes == [{"role": "admin"}, {"allow_private_targets": True},
                       {"quotas": {"deployments": 3, "cores": None, "memory": None, "disk": 20}}]
    assert [e["target"] for e in audit_entries(client, "user.password_set")] == ["user alice"]


def test_the_last_active_admin_is_kept_and_the_page_says_why(app, client, web_login, boss):
    web_login(client, boss, PASSWORD)
    page = "/admin/users/test-admin"
    assert post_form(client, f"{page}/disabled", {"disabled": "true"}, page=page).status_code == 302

    demoted = post_form(client, "/admin/users/boss/role", {"role": "member"}, page="/admin/users/boss")
    disabled = post_form(client, "/admin/users/boss/disabled", {"disabled": "true"}, page="/admin/users/boss")

    assert demoted.status_code == 409 and "last active admin" in text_of(demoted)
    assert disabled.status_code == 409 and "last active admin" in text_of(disabled)
    assert user_row(app, "boss").role == "admin" and user_row(app, "boss").disabled_at is None
    assert client.get("/admin/users").status_code == 200


def test_an_admin_setting_their_own_password_stays_logged_in(app, client, web_login, boss):
    web_login(client, boss, PASSWORD)
    other = app.test_client()
    web_login(other, boss, PASSWORD)

    response = post_form(client, "/admin/users/boss/password", {"password": NEW_PASSWORD,
                                                                "password_repeat": NEW_PASSWORD},
                         page="/admin/users/boss")

    assert response.status_code == 302
    assert client.get("/admin/users").status_code == 200
    assert other.get("/admin/users").status_code == 302


# -- admin: audit log -------------------------------------------------------------------------------------


def actions_shown(page):
    return re.findall(r"<td><code>([a-z_.]+)</code></td>", text_of(page))


def test_the_audit_page_filters_by_action_user_and_time(app, client, web_login, boss, alice):
    alices = app.test_client()
    web_login(alices, alice, PASSWORD)
    create_token(alices)
    web_login(client, boss, PASSWORD)

    everything = client.get("/admin/audit")
    tokens = client.get("/admin/audit?action=token.")
    by_alice = client.get("/admin/audit?user=alice")
    since = client.get("/admin/audit?since=2000-01-01T00:00&until=2999-12-31T23:59")
    future = client.get("/admin/audit?since=2999-01-01T00:00")

    assert everything.status_code == 200
    assert {"auth.login", "token.create"} <= set(actions_shown(everything))
    assert actions_shown(tokens) == ["token.create"]
    assert "user alice" not in text_of(tokens) and 'value="token."' in text_of(tokens)
    assert set(actions_shown(by_alice)) == {"auth.login", "token.create"}
    assert set(actions_shown(since)) == set(actions_shown(everything))
    assert future.status_code == 200 and actions_shown(future) == []
    assert 'value="2999-01-01T00:00"' in text_of(future)
    [details] = re.findall(r'<code class="details">([^<]*)</code>', text_of(tokens))
    assert details == ("{&#34;expires_at&#34;:null,&#34;name&#34;:&#34;laptop&#34;,"
                       "&#34;via&#34;:&#34;dashboard&#34;}")  # compact JSON, keys sorted, escaped


def test_the_audit_page_shows_bad_filters_beside_their_fields(client, web_login, boss):
    web_login(client, boss, PASSWORD)

    unknown = client.get("/admin/audit?user=nobody")
    malformed = client.get("/admin/audit?action=Token!&since=yesterday")
    no_deployment = client.get(f"/admin/audit?deployment={uuid.uuid4()}")

    assert unknown.status_code == 404 and field_error(unknown, "user") == "no such user"
    assert malformed.status_code == 422
    assert field_error(malformed, "action") and field_error(malformed, "since")
    assert no_deployment.status_code == 404 and field_error(no_deployment, "deployment")


def test_the_audit_page_pages_by_before(app, client, web_login, boss):
    with app.app_context():
        user = accounts.find_user("boss")
        for number in range(admin.AUDIT_PER_PAGE + 5):
            audit.record("test.entry", user=user, target=f"entry {number}")
        db.session.remove()
    web_login(client, boss, PASSWORD)

    first = client.get("/admin/audit?action=test.")
    older = re.search(r'href="(/admin/audit\?[^"]*before=\d+[^"]*)" rel="next"', text_of(first))
    assert older
    second = client.get(older.group(1).replace("&amp;", "&"))

    assert len(actions_shown(first)) == admin.AUDIT_PER_PAGE
    assert len(actions_shown(second)) == 5
    assert "entry 0<" in text_of(second) and 'rel="next"' not in text_of(second)
