"""The dashboard's defences: CSRF on every change, the login's one answer and its limits, sessions that end on the
server, the session cookie's flags, the page headers and what pages may load, and an API left as it was."""
import json
import re
import uuid
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from app import db
from backend.models import AuditEntry, Deployment, Release, User, WebSession
from backend.models.types import utcnow
from backend.models.user import hash_token
from backend.platform import platform_of
from backend.services import accounts, passwords, web_sessions
from backend.status import DeploymentStatus
from backend.web.session import LOGIN_REFUSED
from tests.helpers.accounts import make_user
from tests.helpers.apps import create_test_app
from tests.web.helpers import PASSWORD, csrf_of, login, new_token_of, person, text_of

NEW_PASSWORD = "another horse, another staple"
REPO = "https://github.com/acme/shop-api"
APP_URL = "http://10.0.0.42:8000"


# -- helpers ----------------------------------------------------------------------------------------------



def is_logged_in(client):
    """Whether client's session still opens the list (rather than being sent to the login)."""
    response = client.get("/")
    assert response.status_code in (200, 302)
    if response.status_code == 302:
        assert urlsplit(response.headers["Location"]).path == "/login"
    return response.status_code == 200


def session_row_id(app, client):
    """The id of the server-side session client's cookie carries."""
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    session_id = app.session_interface.get_signing_serializer(app).loads(cookie.value)["sid"]
    with app.app_context():
        row_id = db.session.scalars(select(WebSession.id).where(
            WebSession.session_hash == hash_token(session_id))).one()
        db.session.remove()
    return row_id


def with_user(app, username, work):
    """work(user) in an app context of its own (a service call as an admin's tool would make it)."""
    with app.app_context():
        result = work(User.get_by_username(username))
        db.session.remove()
    return result


def make_running(app, name):
    """Give deployment `name` a guest, an address and a live release: every action applies to it."""
    with app.app_context():
        deployment = Deployment.get_by_name(name)
        db.session.add(Release(deployment_id=deployment.id, version=1, status="superseded", reason="create",
                               branch="main", commit_sha="b" * 40))
        db.session.add(Release(deployment_id=deployment.id, version=2, status="live", reason="redeploy",
                               branch="main", commit_sha="c" * 40))
        deployment.status = DeploymentStatus.RUNNING
        deployment.vm_id, deployment.node = 4242, "pve1"
        deployment.ip_address, deployment.served_port, deployment.live_release = "10.0.0.42", 8000, 2
        db.session.commit()
        db.session.remove()


def database_state(app):
    """Every deployment's row, the audit log's size, the open sessions and the job queue."""
    with app.app_context():
        deployments = {d.name: {attr.key: getattr(d, attr.key) for attr in Deployment.__mapper__.column_attrs}
                       for d in Deployment.get_all(include_deleted=True)}
        state = {"deployments": deployments,
                 "audit": db.session.scalar(select(func.count()).select_from(AuditEntry)),
                 "sessions": db.session.scalar(select(func.count()).select_from(WebSession)
                                               .where(WebSession.revoked_at.is_(None))),
                 "jobs": list(platform_of(app).jobs.queue)}
        db.session.remove()
    return state


def new_form(name="csrf-shop"):
    return {"name": name, "github_url": REPO, "deployment_type": "lxc", "framework": "flask", "branch": "main"}


def limited_app(database_url, proxmox, **config):
    """A test app with rate limits on (the login's 5 per minute), counted apart from every other test's."""
    settings = {"PROXMOX_SETTINGS": proxmox, "RATELIMIT_ENABLED": True, "RATELIMIT_DEFAULT": "1000 per minute",
                "RATELIMIT_LOGIN": "5 per minute", "RATELIMIT_KEY_PREFIX": f"web{uuid.uuid4().hex[:8]}"}
    settings.update(config)
    return create_test_app(SQLALCHEMY_DATABASE_URI=database_url, **settings)


@pytest.fixture
def alice(app, web_login, make_deployment):
    """alice logged in, with her running deployment web-shop: (her client, her page's CSRF token)."""
    client, csrf, token = person(app, web_login, "alice")
    make_deployment(name="web-shop", token=token)
    make_running(app, "web-shop")
    return client, csrf("/")


# -- CSRF -------------------------------------------------------------------------------------------------


CHANGES = [("/deployments/new", new_form()), ("/logout", {}), ("/deployments/web-shop/actions/stop", {}),
           ("/deployments/web-shop/env", {"env": "INJECTED=1"}), ("/deployments/web-shop/delete",
                                                                  {"confirm": "web-shop"})]


@pytest.mark.parametrize(("path", "data"), CHANGES)
def test_a_post_without_a_csrf_token_or_with_a_wrong_one_is_refused_with_400_and_changes_nothing(
        app, web_login, alice, path, data):
    client, good = alice
    bob, bobs_csrf, _ = person(app, web_login, "bob")
    before = database_state(app)
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    for token in (None, "", "not-a-token", forged, bobs_csrf("/")):
        form = dict(data) if token is None else {"csrf_token": token, **data}
        response = client.post(path, data=form)
        assert response.status_code == 400, (path, token)
        assert response.mimetype == "text/html"
        assert "The form could not be accepted" in text_of(response)
    htmx = client.post(path, data=data, headers={"HX-Request": "true", "X-CSRFToken": "not-a-token"})
    assert htmx.status_code == 400
    assert "<html" not in text_of(htmx) and "The form could not be accepted" in text_of(htmx)
    assert database_state(app) == before
    assert is_logged_in(client)


def test_the_login_form_needs_its_csrf_token_too(app):
    make_user(app, "alice", password=PASSWORD)
    client = app.test_client()
    client.get("/login")
    response = client.post("/login", data={"username": "alice", "password": PASSWORD, "next": "/"})
    assert response.status_code == 400
    assert not is_logged_in(client)


def test_a_login_starts_a_new_cookie_so_the_login_pages_csrf_token_stops_working(app):
    make_user(app, "alice", password=PASSWORD)
    client = app.test_client()
    before = csrf_of(client.get("/login"))
    anonymous_cookie = client.get_cookie("paas_session").value
    assert client.post("/login", data={"csrf_token": before, "username": "alice", "password": PASSWORD,
                                       "next": "/"}).status_code == 302
    assert client.get_cookie("paas_session").value != anonymous_cookie
    refused = client.post("/deployments/new", data={"csrf_token": before, **new_form()})
    assert refused.status_code == 400
    assert csrf_of(client.get("/")) != before


def test_an_htmx_request_with_the_token_in_the_x_csrftoken_header_is_accepted(app, alice):
    client, _ = alice
    page = client.get("/")
    meta = re.search(r'<meta name="csrf-token" content="([^"]+)">', text_of(page)).group(1)
    headers = {"HX-Request": "true", "X-CSRFToken": meta}
    created = client.post("/deployments/new", data=new_form("htmx-shop"), headers=headers)
    assert created.status_code == 302 and created.headers["Location"] == "/deployments/htmx-shop"
    stopped = client.post("/deployments/web-shop/actions/stop", headers=headers)
    assert stopped.status_code == 302
    state = database_state(app)
    assert "htmx-shop" in state["deployments"]
    assert ("stop", state["deployments"]["web-shop"]["id"]) in state["jobs"]


# -- logging in -------------------------------------------------------------------------------------------


def login_error(response):
    match = re.search(r'<p class="flash flash-error" role="alert" id="login-error">([^<]*)</p>', text_of(response))
    return match.group(1) if match else None


def without_tokens(response):
    """The page's HTML without its CSRF tokens and the username typed back (what differs between any two)."""
    page = re.sub(r'(name="csrf_token" value|name="csrf-token" content)="[^"]*"', r'\1=""', text_of(response))
    return re.sub(r'(<input id="username"[^>]*value=)"[^"]*"', r'\1""', page)


def test_a_wrong_password_and_an_unknown_user_get_the_same_401(app):
    make_user(app, "alice", password=PASSWORD)
    make_user(app, "carol")  # no password
    make_user(app, "dave", password=PASSWORD)
    with_user(app, "dave", lambda user: accounts.update_user(user, {"disabled": True}))
    client = app.test_client()
    answers = [login(client, username, password) for username, password in [
        ("alice", "wrong password, long enough"), ("nobody", PASSWORD), ("carol", PASSWORD), ("dave", PASSWORD),
        ("alice", ""), ("ALICE", PASSWORD)]]
    assert {response.status_code for response in answers} == {401}
    assert {login_error(response) for response in answers} == {LOGIN_REFUSED}
    assert len({without_tokens(response) for response in answers}) == 1
    assert not is_logged_in(client)
    with app.app_context():
        failed = [(entry.username, entry.details.get("username"), entry.details.get("via"))
                  for entry in AuditEntry.page(action="auth.login_failed")]
        assert sorted(failed, key=str) == sorted([(None, "alice", "dashboard"), (None, None, "dashboard"),
                                                  (None, "carol", "dashboard"), (None, "dave", "dashboard"),
                                                  (None, "alice", "dashboard"), (None, None, "dashboard")], key=str)
        assert db.session.scalar(select(func.count()).select_from(WebSession)) == 0
        db.session.remove()


def test_the_sixth_login_attempt_in_a_minute_is_429_with_retry_after_on_an_html_page(database_url,
                                                                                     unreachable_proxmox):
    app = limited_app(database_url, unreachable_proxmox)
    try:
        make_user(app, "alice", password=PASSWORD)
        client = app.test_client()
        codes = [login(client, "alice", "wrong password, long enough").status_code for _ in range(5)]
        assert codes == [401] * 5
        slowed = login(client, "alice", "wrong password, long enough")
        assert slowed.status_code == 429
        assert 0 < int(slowed.headers["Retry-After"]) <= 60
        assert slowed.mimetype == "text/html"
        assert text_of(slowed).startswith("<!doctype html>") and "Too many attempts" in text_of(slowed)
        assert "Content-Security-Policy" in slowed.headers
        # The right password does not get through while the limit holds.
        assert login(client, "alice", PASSWORD).status_code == 429
        assert not is_logged_in(client)
        # An htmx request is answered with the message alone.
        token = csrf_of(client.get("/login"))
        htmx = client.post("/login", data={"csrf_token": token, "username": "alice", "password": PASSWORD},
                           headers={"HX-Request": "true"})
        assert htmx.status_code == 429 and "<html" not in text_of(htmx) and "Too many" in text_of(htmx)
    finally:
        with app.app_context():
            db.engine.dispose()


def test_logins_are_counted_per_address_and_per_username(database_url, unreachable_proxmox):
    app = limited_app(database_url, unreachable_proxmox)
    try:
        make_user(app, "alice", password=PASSWORD)
        make_user(app, "bob", password=PASSWORD)
        # One address trying many names.
        client = app.test_client()
        codes = [login(client, f"user-{i}", PASSWORD).status_code for i in range(6)]
        assert codes == [401] * 5 + [429]
        # Many addresses trying one name.
        spread = [login(app.test_client(), "alice", "wrong password, long enough",
                        environ_base={"REMOTE_ADDR": f"10.9.0.{i}"}).status_code for i in range(6)]
        assert spread == [401] * 5 + [429]
        # Another name from another address is not slowed down.
        other = app.test_client()
        assert login(other, "bob", PASSWORD, environ_base={"REMOTE_ADDR": "10.9.1.1"}).status_code == 302
    finally:
        with app.app_context():
            db.engine.dispose()


def test_the_password_change_form_is_limited_as_the_login_is(database_url, unreachable_proxmox, web_login):
    app = limited_app(database_url, unreachable_proxmox)
    try:
        make_user(app, "alice", password=PASSWORD)
        client = app.test_client()
        csrf = web_login(client, "alice", PASSWORD)
        token = csrf("/account")
        form = {"csrf_token": token, "current_password": "not the current one", "new_password": NEW_PASSWORD,
                "new_password_repeat": NEW_PASSWORD}
        codes = [client.post("/account/password", data=form).status_code for _ in range(6)]
        # The login that opened the session was the first of alice's five tries this minute.
        assert codes == [422] * 4 + [429] * 2
        right = {**form, "current_password": PASSWORD}
        assert client.post("/account/password", data=right).status_code == 429
        with app.app_context():  # the password did not change (a login would be held back too, alice's count is spent)
            assert passwords.verify_password("alice", PASSWORD) is not None
    finally:
        with app.app_context():
            db.engine.dispose()


def test_the_api_and_the_dashboard_count_password_guesses_together(database_url, unreachable_proxmox):
    """Counted apart, a username could be guessed five times a minute through each door."""
    app = limited_app(database_url, unreachable_proxmox)
    try:
        make_user(app, "alice", password=PASSWORD)
        client = app.test_client()
        codes = [client.post("/api/auth/login", json={"username": "alice", "password": f"wrong {n}",
                                                      "token_name": "guess"},
                             environ_base={"REMOTE_ADDR": f"10.9.3.{n}"}).status_code for n in range(3)]
        codes += [login(app.test_client(), "alice", f"wrong again {n}", environ_base={"REMOTE_ADDR": f"10.9.4.{n}"}
                        ).status_code for n in range(3)]
        assert codes == [401] * 3 + [401] * 2 + [429]
        # Per username: another name from those addresses is not held back.
        make_user(app, "bob", password=PASSWORD)
        assert login(app.test_client(), "bob", PASSWORD, environ_base={"REMOTE_ADDR": "10.9.4.9"}).status_code == 302
    finally:
        with app.app_context():
            db.engine.dispose()


# -- sessions ---------------------------------------------------------------------------------------------


def test_a_disabled_users_session_ends_at_once(app, web_login):
    client, _, _ = person(app, web_login, "alice")
    assert is_logged_in(client)
    with_user(app, "alice", lambda user: accounts.update_user(user, {"disabled": True}))
    response = client.get("/deployments/new")
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/login"
    # Enabled again, the old session stays ended: a new login is needed.
    with_user(app, "alice", lambda user: accounts.update_user(user, {"disabled": False}))
    assert not is_logged_in(client)


def test_a_logout_ends_the_session_on_the_server(app, web_login):
    client, csrf, _ = person(app, web_login, "alice")
    cookie = client.get_cookie("paas_session").value
    row_id = session_row_id(app, client)
    response = client.post("/logout", data={"csrf_token": csrf("/")})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert not is_logged_in(client)
    with app.app_context():
        assert db.session.get(WebSession, row_id).revoked_at is not None
        db.session.remove()
    # The old cookie, replayed by someone who kept it, opens nothing.
    replay = app.test_client()
    replay.set_cookie("paas_session", cookie)
    assert not is_logged_in(replay)
    assert replay.get("/deployments/new").status_code == 302


def test_a_new_password_ends_the_users_other_sessions(app, web_login):
    here, _, _ = person(app, web_login, "alice")
    there = app.test_client()
    web_login(there, "alice", PASSWORD)
    bob, _, _ = person(app, web_login, "bob")
    keep = session_row_id(app, here)
    with_user(app, "alice", lambda user: passwords.set_password(user, NEW_PASSWORD, keep_session=keep))
    assert is_logged_in(here)
    assert not is_logged_in(there)
    assert is_logged_in(bob)  # nobody else's
    # Without a session to keep, every one of them ends.
    with_user(app, "alice", lambda user: passwords.set_password(user, PASSWORD))
    assert not is_logged_in(here)


def test_changing_ones_password_on_the_account_page_ends_every_session_and_goes_on_in_a_new_one(app, web_login):
    here, csrf, _ = person(app, web_login, "alice")
    old_cookie = here.get_cookie("paas_session").value
    there = app.test_client()
    web_login(there, "alice", PASSWORD)
    response = here.post("/account/password", data={"csrf_token": csrf("/account"), "current_password": PASSWORD,
                                                    "new_password": NEW_PASSWORD,
                                                    "new_password_repeat": NEW_PASSWORD})
    assert response.status_code == 302
    assert is_logged_in(here)  # in a new session, with a new cookie
    assert here.get_cookie("paas_session").value != old_cookie
    assert not is_logged_in(there)
    stolen = app.test_client()  # this browser's own cookie from before the change: ended too
    stolen.set_cookie("paas_session", old_cookie)
    assert not is_logged_in(stolen)
    assert login(app.test_client(), "alice", NEW_PASSWORD).status_code == 302


def test_an_expired_or_idle_session_ends(app, web_login):
    expired, _, _ = person(app, web_login, "alice")
    idle = app.test_client()
    web_login(idle, "alice", PASSWORD)
    for client, column in ((expired, "expires_at"), (idle, "last_seen_at")):
        row_id = session_row_id(app, client)
        with app.app_context():
            row = db.session.get(WebSession, row_id)
            setattr(row, column, utcnow() - timedelta(hours=app.config["WEB_SESSION_IDLE_HOURS"] + 1))
            db.session.commit()
            db.session.remove()
        assert not is_logged_in(client)


def test_a_cookie_signed_with_another_key_opens_nothing(app, web_login, database_url, unreachable_proxmox):
    client, _, _ = person(app, web_login, "alice")
    other = create_test_app(SQLALCHEMY_DATABASE_URI=database_url, PROXMOX_SETTINGS=unreachable_proxmox,
                            SECRET_KEY="another-key")
    cookie = client.get_cookie("paas_session").value
    payload = app.session_interface.get_signing_serializer(app).loads(cookie)
    forged = other.session_interface.get_signing_serializer(other).dumps(payload)
    stranger = app.test_client()
    stranger.set_cookie("paas_session", forged)
    assert not is_logged_in(stranger)
    with other.app_context():
        db.engine.dispose()


# -- the cookie -------------------------------------------------------------------------------------------


def session_cookie_header(response):
    [header] = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("paas_session=")]
    return [part.strip() for part in header.split(";")]


def test_the_session_cookie_is_httponly_and_samesite_lax(app):
    make_user(app, "alice", password=PASSWORD)
    response = login(app.test_client(), "alice", PASSWORD)
    attributes = session_cookie_header(response)
    assert "HttpOnly" in attributes
    assert "SameSite=Lax" in attributes
    assert "Path=/" in attributes
    assert "Secure" not in attributes  # testing runs on plain HTTP
    assert not any(part.lower().startswith(("expires=", "max-age=")) for part in attributes)  # ends with the browser
    # It carries a random session id, never who the user is.
    payload = app.session_interface.get_signing_serializer(app).loads(attributes[0].partition("=")[2])
    assert set(payload) <= {"sid", "_permanent", "csrf_token", "_flashes"}
    assert "alice" not in str(payload)


def test_the_session_cookie_is_secure_when_configured_for_production(database_url, unreachable_proxmox):
    app = create_test_app(SQLALCHEMY_DATABASE_URI=database_url, PROXMOX_SETTINGS=unreachable_proxmox,
                          SESSION_COOKIE_SECURE=True)
    try:
        make_user(app, "alice", password=PASSWORD)
        client = app.test_client()
        anonymous = client.get("/login", base_url="https://localhost")
        assert "Secure" in session_cookie_header(anonymous)
        token = csrf_of(anonymous)
        # Over HTTPS, Flask-WTF also wants the Referer of this site (the pages' Referrer-Policy sends it).
        response = client.post("/login", data={"csrf_token": token, "username": "alice", "password": PASSWORD},
                               base_url="https://localhost", headers={"Referer": "https://localhost/login"})
        assert response.status_code == 302, text_of(response)
        attributes = session_cookie_header(response)
        assert {"Secure", "HttpOnly", "SameSite=Lax"} <= set(attributes)
    finally:
        with app.app_context():
            db.engine.dispose()


# -- page headers and what a page may load ---------------------------------------------------------------


class PageScan(HTMLParser):
    """What a page would load or run: elements with their attributes, and each script's inline text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements = []
        self.scripts = []
        self._in_script = None

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = []
            self.scripts.append(self._in_script)

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = None

    def handle_data(self, data):
        if self._in_script is not None:
            self._in_script.append(data)


def problems_of(page):
    """Everything on page that loads from another host, runs inline, or styles inline."""
    scan = PageScan()
    scan.feed(text_of(page))
    found = []
    for tag, attrs in scan.elements:
        for name, value in attrs.items():
            value = (value or "").strip()
            lowered = value.lower()
            if name == "style":
                found.append(f"<{tag} style=...>")
            if name.startswith("on") or name.startswith("hx-on"):
                found.append(f"<{tag} {name}=...> (an inline event handler)")
            if name in ("src", "href", "action", "formaction", "hx-get", "hx-post", "data-stream", "data-source",
                        "data-refresh", "data-status-stream") and lowered.startswith("javascript:"):
                found.append(f"<{tag} {name}={value}>")
            remote = lowered.startswith(("http://", "https://", "//"))
            if name in ("src", "href", "srcset", "action", "formaction", "poster", "data") and remote:
                allowed = tag == "a" and name == "href" and (value == APP_URL or value == REPO)
                if not allowed:
                    found.append(f"<{tag} {name}={value}>")
        if tag in ("style", "iframe", "object", "embed", "base"):
            found.append(f"<{tag}>")
    for text in scan.scripts:
        if "".join(text).strip():
            found.append(f"an inline <script>: {''.join(text).strip()[:60]}")
    for tag, attrs in scan.elements:
        if tag == "script" and not attrs.get("src", "").startswith("/static/"):
            found.append(f"<script src={attrs.get('src')}>")
    return found


def policy_of(response):
    """The Content-Security-Policy as {directive: [sources]}."""
    policy = {}
    for directive in response.headers["Content-Security-Policy"].split(";"):
        name, *sources = directive.split()
        policy[name] = sources
    return policy


def check_headers(response, label):
    policy = policy_of(response)
    scripts = policy.get("script-src", policy.get("default-src"))
    assert scripts is not None, label
    assert not {"'unsafe-inline'", "'unsafe-eval'", "*", "http:", "https:", "data:"} & set(scripts), label
    assert not {"'unsafe-inline'", "*"} & set(policy.get("style-src", policy.get("default-src"))), label
    assert policy["frame-ancestors"] == ["'none'"], label
    assert policy["object-src"] == ["'none'"], label
    assert response.headers["X-Frame-Options"] == "DENY", label
    assert response.headers["X-Content-Type-Options"] == "nosniff", label
    assert response.headers["Cache-Control"] == "no-store", label


@pytest.fixture
def admin_with_everything(app, web_login, make_deployment):
    """An admin logged in, owning a running deployment with an address, releases, a variable and events: their
    client and csrf(page)."""
    client, csrf, token = person(app, web_login, "root", role="admin")
    make_user(app, "alice", password=PASSWORD)
    make_deployment(name="web-shop", token=token, github_url=REPO, env={"API_KEY": "s3cr3t-value"})
    make_running(app, "web-shop")
    return client, csrf


def test_every_page_sends_a_strict_policy_and_loads_nothing_from_elsewhere(app, admin_with_everything):
    client, csrf = admin_with_everything
    assert client.get("/deployments/web-shop").status_code == 200
    token = csrf("/")
    pages = {path: client.get(path) for path in [
        "/", "/deployments/new", "/deployments/web-shop", "/account", "/admin/users", "/admin/users/alice",
        "/admin/audit", "/admin/nodes", "/deployments/rows", "/deployments/web-shop/summary",
        "/deployments/web-shop/events", "/nodes", "/deployments/no-such-one"]}
    pages["/login (anonymous)"] = app.test_client().get("/login")
    pages["/login (refused)"] = login(app.test_client(), "root", "wrong password, long enough")
    pages["webhook secret"] = client.post("/deployments/web-shop/webhook", data={"csrf_token": token})
    pages["new token"] = client.post("/account/tokens", data={"csrf_token": token, "name": "laptop"})
    pages["invalid form"] = client.post("/deployments/new", data={"csrf_token": token, "name": "X"})
    pages["csrf refusal"] = client.post("/deployments/new", data={"name": "x"})
    assert new_token_of(pages["new token"]) is not None
    assert 'id="webhook-secret"' in text_of(pages["webhook secret"])
    assert APP_URL in text_of(pages["/deployments/web-shop"])  # the app's own link is there, and allowed
    for label, response in pages.items():
        assert response.status_code in (200, 201, 400, 401, 404, 422), label
        check_headers(response, label)
        assert problems_of(response) == [], label


def test_the_static_assets_are_served_from_this_site(app):
    client = app.test_client()
    for path in ["/static/app.js", "/static/app.css", "/static/vendor/htmx.min.js", "/static/vendor/pico.min.css"]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        response.close()


# -- the API ----------------------------------------------------------------------------------------------


def test_the_api_takes_a_bearer_token_without_any_csrf_token(app, web_login):
    client, _, token = person(app, web_login, "alice")
    # The same client holds a dashboard session; the API neither needs nor checks a CSRF token.
    created = client.post("/api/tokens", json={"name": "ci"}, token=token)
    assert created.status_code == 201, created.get_json()
    assert created.mimetype == "application/json"
    deployment = client.post("/api/deployments", json={**new_form("api-shop")}, token=token)
    assert deployment.status_code == 201, deployment.get_json()
    assert "Content-Security-Policy" not in created.headers  # the dashboard's headers stay the dashboard's


def test_the_api_does_not_take_the_dashboards_session_cookie(app, web_login):
    client, _, _ = person(app, web_login, "alice")
    assert is_logged_in(client)
    for method, path, body in (("post", "/api/tokens", {"name": "stolen"}), ("get", "/api/tokens", None),
                               ("post", "/api/deployments", new_form("cookie-shop"))):
        response = getattr(client, method)(path, json=body, token=None)
        assert response.status_code == 401, path
    with app.app_context():
        assert Deployment.get_by_name("cookie-shop") is None
        db.session.remove()


def test_a_login_in_a_browser_that_has_a_session_ends_that_session(app, web_login):
    client, csrf, _ = person(app, web_login, "alice")
    alices_row = session_row_id(app, client)
    make_user(app, "bob", password=PASSWORD)
    # The login form of a tab opened before alice logged in, sent now.
    response = client.post("/login", data={"csrf_token": csrf("/"), "username": "bob", "password": PASSWORD})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(WebSession, alices_row).revoked_at is not None
        db.session.remove()


# -- live streams -----------------------------------------------------------------------------------------


def first_events(response, wanted, limit=20):
    """Read a streamed SSE response until `wanted` events have come (or the stream ends); then close it."""
    seen, buffer = [], ""
    try:
        for chunk in response.response:
            buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
            blocks = buffer.split("\n\n")
            buffer = blocks.pop()
            for block in blocks:
                fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line
                              and not line.startswith(":"))
                if "event" in fields:
                    seen.append((fields["event"], json.loads(fields["data"])))
            if len(seen) >= wanted or len(seen) >= limit:
                break
    finally:
        response.close()
    return seen


def test_the_status_stream_sends_the_watched_statuses_at_once_and_only_the_users_own(app, web_login, alice,
                                                                                      make_deployment):
    client, _ = alice
    _, _, bobs_token = person(app, web_login, "bob")
    make_deployment(name="bob-shop", token=bobs_token)
    with app.app_context():
        alices_id = str(Deployment.get_by_name("web-shop").id)
        bobs_id = str(Deployment.get_by_name("bob-shop").id)
        db.session.remove()
    response = client.get(f"/stream/statuses?watch={alices_id},{bobs_id}", buffered=False)
    assert response.mimetype == "text/event-stream"
    # bob's is someone else's: reported as if it did not exist ("deleted"), its status never.
    events = first_events(response, 2)
    assert sorted(events, key=lambda e: e[1]["id"] != alices_id) == [
        ("status", {"id": alices_id, "status": "running"}), ("status", {"id": bobs_id, "status": "deleted"})]


def test_the_status_stream_ends_when_the_session_does(app, alice):
    client, csrf = alice
    response = client.get("/stream/statuses", buffered=False)
    chunks = iter(response.response)
    next(chunks)  # the stream is open (its retry line)
    with app.app_context():
        web_sessions.close(db.session.get(WebSession, session_row_id(app, client)))
        db.session.remove()
    rest = list(chunks)  # ends by itself at its next poll: nothing more is sent
    assert not any("event:" in (c.decode() if isinstance(c, bytes) else c) for c in rest)


def test_the_build_log_stream_ends_when_the_session_does(app, alice):
    client, _ = alice
    with app.app_context():
        deployment = Deployment.get_by_name("web-shop")
        release = Release.get(deployment.id, 2)
        release.status, release.finished_at = "building", None
        db.session.commit()
        db.session.remove()
    response = client.get("/deployments/web-shop/log/stream", buffered=False)
    chunks = iter(response.response)
    assert "release" in b"".join(c if isinstance(c, bytes) else c.encode() for c in (next(chunks), next(chunks))
                                 ).decode()
    with app.app_context():
        web_sessions.close(db.session.get(WebSession, session_row_id(app, client)))
        db.session.remove()
    assert [c for c in chunks if b"event:" in (c if isinstance(c, bytes) else c.encode())] == []


# -- errors and limits as people meet them ----------------------------------------------------------------


def test_a_browser_gets_a_page_for_an_unknown_path_or_method_and_the_api_keeps_its_json(app):
    client = app.test_client()
    for path, method, status in (("/nonexistent", "GET", 404), ("/logout", "GET", 405)):
        response = client.open(path, method=method, headers={"Accept": "text/html,application/xhtml+xml"})
        assert response.status_code == status and response.mimetype == "text/html", path
        assert "<h1>" in text_of(response)
    assert client.get("/api/nope", headers={"Accept": "text/html"}).mimetype == "application/json"
    assert client.get("/nonexistent").mimetype == "application/json"  # a program that asks for no HTML


def test_a_page_that_fails_unexpectedly_is_a_page_and_says_nothing_of_the_failure(app, alice, monkeypatch):
    client, _ = alice

    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr("backend.web.deployments.history.latest_events", broken)
    response = client.get("/deployments/web-shop/events")
    assert response.status_code == 500 and response.mimetype == "text/html"
    assert "secret internals" not in text_of(response) and "Something went wrong" in text_of(response)


def test_the_new_deployment_form_is_limited_as_the_apis_create_is(database_url, unreachable_proxmox, web_login):
    app = limited_app(database_url, unreachable_proxmox, RATELIMIT_CREATE="2 per minute")
    try:
        make_user(app, "alice", password=PASSWORD)
        client = app.test_client()
        csrf = web_login(client, "alice", PASSWORD)
        token = csrf("/deployments/new")
        codes = [client.post("/deployments/new", data={"csrf_token": token, **new_form(f"shop-{n}")}).status_code
                 for n in range(3)]
        assert codes[:2] != [429, 429] and codes[2] == 429
        assert client.get("/deployments/new").status_code == 200  # showing the form is not limited
    finally:
        with app.app_context():
            db.engine.dispose()


def test_the_status_stream_reports_a_change_as_it_happens(app, alice):
    client, _ = alice
    with app.app_context():
        alices_id = str(Deployment.get_by_name("web-shop").id)
        db.session.remove()
    response = client.get(f"/stream/statuses?watch={alices_id}", buffered=False)
    chunks = iter(response.response)
    text = ""
    while "event: status" not in text:
        text += next(chunks).decode()
    assert '"status": "running"' in text
    with app.app_context():
        deployment = Deployment.get_by_name("web-shop")
        deployment.status = DeploymentStatus.STOPPED
        db.session.commit()
        db.session.remove()
    text = ""
    try:
        while "event: status" not in text:
            text += next(chunks).decode()
    finally:
        response.close()
    assert json.loads(text.split("data: ", 1)[1].split("\n", 1)[0]) == {"id": alices_id, "status": "stopped"}


def test_a_login_over_plain_http_to_a_secure_cookie_says_why_instead_of_looping(database_url, unreachable_proxmox):
    app = create_test_app(SQLALCHEMY_DATABASE_URI=database_url, PROXMOX_SETTINGS=unreachable_proxmox,
                          SESSION_COOKIE_SECURE=True)
    try:
        make_user(app, "alice", password=PASSWORD)
        remote = app.test_client()
        form = remote.get("/login", base_url="http://paas.example.lan")
        response = remote.post("/login", base_url="http://paas.example.lan", data={
            "csrf_token": csrf_of(form), "username": "alice", "password": PASSWORD})
        assert response.status_code == 400 and "over HTTPS only" in text_of(response)
        # From this machine, and over HTTPS, the cookie comes back: the login works.
        assert login(app.test_client(), "alice", PASSWORD).status_code == 302
        secure = app.test_client()
        form = secure.get("/login", base_url="https://paas.example.lan")
        # Over HTTPS a form also needs its page's Referer (Flask-WTF's strict check; browsers send it, same-origin).
        assert secure.post("/login", base_url="https://paas.example.lan", headers={
            "Referer": "https://paas.example.lan/login"}, data={
            "csrf_token": csrf_of(form), "username": "alice", "password": PASSWORD}).status_code == 302
    finally:
        with app.app_context():
            db.engine.dispose()
