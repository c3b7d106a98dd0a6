"""The dashboard's deployment pages, driven as a browser drives them: the login gate, the list and its filters,
the new-deployment form, a deployment's page (environment, settings, delete, the build log stream), and that a
member reaches none of another member's deployments."""
import html
import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from app import db
from backend.models import AuditEntry, Deployment, Release, User
from backend.models.event import DeploymentEvent
from backend.models.release import LogLine
from backend.platform import platform_of
from backend.services import envvars
from backend.status import DeploymentStatus
from tests.helpers.accounts import make_user
from tests.web.helpers import PASSWORD, csrf_of, person, post_form, text_of

SECRET = "s3cr3t-Value-4711"
REPO = "https://github.com/acme/shop-api"


# -- helpers ----------------------------------------------------------------------------------------------



def change(app, name, **fields):
    """Set columns of the live deployment `name` directly (a status a job would have set, a guest's id)."""
    with app.app_context():
        deployment = Deployment.get_by_name(name)
        for key, value in fields.items():
            setattr(deployment, key, value)
        db.session.commit()
        db.session.remove()


def add_release(app, name, version=1, status="live", lines=()):
    """A finished release of deployment `name` with its log lines [(stream, text)]."""
    with app.app_context():
        deployment = Deployment.get_by_name(name)
        db.session.add(Release(deployment_id=deployment.id, version=version, status=status, reason="create",
                               branch="main", commit_sha="a" * 40))
        for stream, line in lines:
            db.session.add(LogLine(deployment_id=deployment.id, release_version=version, stream=stream, line=line))
        db.session.commit()
        db.session.remove()


def stored(app, name):
    """The live deployment `name` as a plain dict of its columns, or None."""
    with app.app_context():
        deployment = Deployment.get_by_name(name)
        row = None if deployment is None else {
            attr.key: getattr(deployment, attr.key) for attr in Deployment.__mapper__.column_attrs}
        db.session.remove()
    return row


def database_state(app, name):
    """Everything a request about deployment `name` could change: its row, releases, events, the audit log, the
    job queue."""
    with app.app_context():
        deployment = Deployment.get_by_name(name)
        state = {
            "row": {attr.key: getattr(deployment, attr.key) for attr in Deployment.__mapper__.column_attrs},
            "releases": [(r.version, r.status) for r in Release.for_deployment(deployment.id)],
            "events": len(DeploymentEvent.for_deployment(deployment.id)),
            "audit": db.session.scalar(select(func.count()).select_from(AuditEntry)),
            "jobs": list(platform_of(app).jobs.queue),
        }
        db.session.remove()
    return state


def audit_entries(app, action):
    with app.app_context():
        entries = [(entry.username, entry.deployment_id, entry.details)
                   for entry in AuditEntry.page(action=action) if entry.action == action]
        db.session.remove()
    return entries


ROW_RE = re.compile(r'<th scope="row"><a href="/deployments/([^"]+)">[^<]*</a></th>\s*'
                    r'<td><span class="badge status-([a-z]+)"')


def listed(page):
    """{name: status} of the deployments table on page."""
    return dict(ROW_RE.findall(text_of(page)))


def field_error(page, field):
    """The message shown beside field (its <small class="field-error">), or None."""
    match = re.search(rf'<small class="field-error" id="{re.escape(field)}-error">([^<]*)</small>', text_of(page))
    return html.unescape(match.group(1)) if match else None


def input_value(page, element_id):
    match = re.search(rf'<input id="{re.escape(element_id)}"[^>]*\svalue="([^"]*)"', text_of(page))
    return html.unescape(match.group(1)) if match else None


def textarea(page, element_id):
    match = re.search(rf'<textarea id="{re.escape(element_id)}"[^>]*>(.*?)</textarea>', text_of(page), re.S)
    return html.unescape(match.group(1)) if match else None


def sse_events(body):
    """The events of a Server-Sent Events body: [{"event", "data", "id"}] (comments and retry left out)."""
    events = []
    for block in body.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if line.startswith(":") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key] = value.removeprefix(" ")
        if "event" in fields or "data" in fields:
            events.append({"event": fields.get("event", "message"), "data": json.loads(fields.get("data", "null")),
                           "id": fields.get("id")})
    return events


def new_form(**overrides):
    form = {"name": "web-shop", "github_url": REPO, "deployment_type": "lxc", "framework": "flask",
            "branch": "main", "cores": "", "memory": "", "disk": "", "env": ""}
    form.update(overrides)
    return form


# -- the login gate ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/deployments/shop-api", "/deployments/new?x=1"])
def test_an_anonymous_page_view_redirects_to_the_login_with_the_page_as_next(app, path):
    response = app.test_client().get(path)
    assert response.status_code == 302
    target = urlsplit(response.headers["Location"])
    assert target.path == "/login"
    assert parse_qs(target.query)["next"] == [path]


def test_an_anonymous_htmx_request_gets_204_with_hx_redirect_to_the_login(app):
    response = app.test_client().get("/deployments/rows?name=shop", headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert "Location" not in response.headers
    target = urlsplit(response.headers["HX-Redirect"])
    assert target.path == "/login" and "next" in parse_qs(target.query)
    assert response.get_data() == b""


@pytest.mark.parametrize(("current_url", "expected"), [
    ("http://localhost/?name=shop", "/?name=shop"),
    ("http://localhost/deployments/web-shop", "/deployments/web-shop"),
    ("https://evil.example/phish", "/"),  # a page of another host is no page to come back to
    (None, "/"),
])
def test_an_anonymous_htmx_request_returns_to_the_page_it_came_from_after_login(app, current_url, expected):
    headers = {"HX-Request": "true"} | ({"HX-Current-URL": current_url} if current_url else {})
    response = app.test_client().get("/deployments/rows?name=shop", headers=headers)
    assert response.status_code == 204
    assert parse_qs(urlsplit(response.headers["HX-Redirect"]).query)["next"] == [expected]


@pytest.mark.parametrize("next_path", ["//evil.example", "https://evil.example/x", "http:evil.example",
                                       "/\\evil.example", "/\t/evil.example", "javascript:alert(1)"])
def test_a_next_pointing_to_another_host_lands_on_the_list_after_login(app, next_path):
    make_user(app, "alice", password=PASSWORD)
    client = app.test_client()
    form = client.get("/login", query_string={"next": next_path})
    assert 'name="next" value="/"' in text_of(form)
    response = client.post("/login", data={"csrf_token": csrf_of(form), "username": "alice",
                                           "password": PASSWORD, "next": next_path})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("next_path", ["/x\r\nSet-Cookie: a=b", "/deployments\n"])
def test_a_next_with_a_line_break_lands_on_the_list_after_login(app, next_path):
    make_user(app, "alice", password=PASSWORD)
    client = app.test_client()
    form = client.get("/login")
    response = client.post("/login", data={"csrf_token": csrf_of(form), "username": "alice",
                                           "password": PASSWORD, "next": next_path})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_a_next_on_this_site_is_where_the_login_leads(app):
    make_user(app, "alice", password=PASSWORD)
    client = app.test_client()
    form = client.get("/login?next=/deployments/new")
    response = client.post("/login", data={"csrf_token": csrf_of(form), "username": "alice",
                                           "password": PASSWORD, "next": "/deployments/new?x=1"})
    assert response.headers["Location"] == "/deployments/new?x=1"


# -- the list ---------------------------------------------------------------------------------------------


@pytest.fixture
def three(app, web_login, make_deployment):
    """alice with alice-shop (pending) and alice-blog (failed), bob with bob-shop: their logged-in clients."""
    alice, _, alice_token = person(app, web_login, "alice")
    bob, _, bob_token = person(app, web_login, "bob")
    make_deployment(name="alice-shop", token=alice_token)
    make_deployment(name="alice-blog", token=alice_token)
    make_deployment(name="bob-shop", token=bob_token)
    change(app, "alice-blog", status=DeploymentStatus.FAILED, error_message="the build failed")
    return alice, bob


def test_the_list_shows_the_users_deployments_with_their_status(app, three):
    alice, bob = three
    page = alice.get("/")
    assert page.status_code == 200
    assert listed(page) == {"alice-shop": "pending", "alice-blog": "failed"}
    assert "bob-shop" not in text_of(page)
    assert listed(bob.get("/")) == {"bob-shop": "pending"}


def test_an_admin_sees_every_deployment(app, web_login, three):
    admin, _, _ = person(app, web_login, "root", role="admin")
    assert listed(admin.get("/")) == {"alice-shop": "pending", "alice-blog": "failed", "bob-shop": "pending"}
    assert admin.get("/deployments/bob-shop").status_code == 200


def test_the_rows_filter_by_name_and_by_status(app, three):
    alice, _ = three
    by_name = alice.get("/deployments/rows?name=shop", headers={"HX-Request": "true"})
    assert by_name.status_code == 200
    assert listed(by_name) == {"alice-shop": "pending"}  # bob-shop matches the name, but is not hers
    assert "<html" not in text_of(by_name)  # the table alone
    assert listed(alice.get("/deployments/rows?status=failed")) == {"alice-blog": "failed"}
    assert listed(alice.get("/?name=blog&status=failed")) == {"alice-blog": "failed"}
    assert listed(alice.get("/deployments/rows?name=nothing-like-it")) == {}


def test_the_rows_put_the_lists_own_address_in_the_address_bar(app, three):
    alice, _ = three
    response = alice.get("/deployments/rows?name=shop&status=pending", headers={"HX-Request": "true"})
    assert response.headers["HX-Replace-Url"] == "/?status=pending&name=shop"
    assert "Deployments by status" in text_of(response)  # the counts come with the rows


def test_a_page_past_the_end_says_so_and_leads_back(app, three):
    alice, _ = three
    page = text_of(alice.get("/?page=40"))
    assert "No deployments on page 40." in page and "No deployments yet" not in page
    assert 'href="/">First page</a>' in page


def test_a_page_number_that_is_not_a_plain_number_is_ignored(app, three):
    alice, _ = three
    response = alice.get("/?page=\u00b2")
    assert response.status_code == 200
    assert listed(response) == {"alice-shop": "pending", "alice-blog": "failed"}


def test_a_filter_that_is_not_valid_is_left_out_with_a_note(app, three):
    alice, _ = three
    page = alice.get("/deployments/rows?status=bogus")
    assert page.status_code == 200
    assert "were not valid" in text_of(page)
    assert listed(page) == {"alice-shop": "pending", "alice-blog": "failed"}


# -- another member's deployment ----------------------------------------------------------------------------


@pytest.fixture
def bobs(app, web_login, make_deployment):
    """bob's running deployment bob-shop (a guest, an address, a live release 2 and release 1 to roll back to: every
    action would apply for bob), and alice logged in: (alice's client, her CSRF token)."""
    alice, csrf, _ = person(app, web_login, "alice")
    _, bob_token = make_user(app, "bob", password=PASSWORD)
    make_deployment(name="bob-shop", token=bob_token, env={"BOB_SECRET": SECRET})
    add_release(app, "bob-shop", version=1, status="superseded", lines=[("out", "bob's build")])
    add_release(app, "bob-shop", version=2, status="live")
    change(app, "bob-shop", status=DeploymentStatus.RUNNING, vm_id=4242, ip_address="10.0.0.42",
           served_port=8000, live_release=2)
    return alice, csrf("/")


NOT_HERS_GETS = ["/deployments/bob-shop", "/deployments/bob-shop/log/stream", "/deployments/bob-shop/runtime-log",
                 "/deployments/bob-shop/metrics.json", "/deployments/bob-shop/summary",
                 "/deployments/bob-shop/events"]
NOT_HERS_POSTS = [
    ("/deployments/bob-shop/actions/stop", {}),
    ("/deployments/bob-shop/actions/restart", {}),
    ("/deployments/bob-shop/redeploy", {}),
    ("/deployments/bob-shop/env", {"env": "INJECTED=1"}),
    ("/deployments/bob-shop/env/BOB_SECRET/delete", {}),
    ("/deployments/bob-shop/settings", {"port": "8080", "start_command": "sh -c 'curl evil'"}),
    ("/deployments/bob-shop/delete", {"confirm": "bob-shop"}),
    ("/deployments/bob-shop/releases/1/rollback", {}),
    ("/deployments/bob-shop/webhook", {}),
    ("/deployments/bob-shop/webhook/disable", {}),
]


def test_a_member_gets_404_for_every_page_of_another_members_deployment(app, bobs):
    alice, _ = bobs
    before = database_state(app, "bob-shop")
    for path in NOT_HERS_GETS:
        response = alice.get(path)
        assert response.status_code == 404, path
        assert "bob-shop" not in text_of(response), path
        assert "10.0.0.42" not in text_of(response)
    assert alice.get(f"/deployments/{before['row']['id']}").status_code == 404  # by id as well
    assert database_state(app, "bob-shop") == before


def test_a_member_gets_404_for_every_action_on_another_members_deployment_and_nothing_changes(app, bobs,
                                                                                              web_login):
    alice, csrf = bobs
    before = database_state(app, "bob-shop")
    for path, data in NOT_HERS_POSTS:
        response = alice.post(path, data={"csrf_token": csrf, **data})
        assert response.status_code == 404, path
        assert "Not found" in text_of(response)
        assert SECRET not in text_of(response)
    assert database_state(app, "bob-shop") == before
    with app.app_context():
        deployment = Deployment.get_by_name("bob-shop")
        assert envvars.decrypt(deployment.env_encrypted) == {"BOB_SECRET": SECRET}
        db.session.remove()
    # The same request from someone who may see bob-shop is accepted: the 404s were about whose it is.
    admin, admin_csrf, _ = person(app, web_login, "root", role="admin")
    stop = admin.post("/deployments/bob-shop/actions/stop", data={"csrf_token": admin_csrf("/")})
    assert stop.status_code == 302
    assert database_state(app, "bob-shop")["jobs"] == [*before["jobs"], ("stop", before["row"]["id"])]


# -- the new-deployment form ------------------------------------------------------------------------------


def test_the_new_deployment_form_offers_the_types_ranges(app, web_login):
    client, _, _ = person(app, web_login, "alice")
    page = client.get("/deployments/new")
    assert page.status_code == 200
    assert 'data-lxc-max="8"' in text_of(page) and 'id="type-lxc" name="deployment_type" value="lxc" checked' \
        in text_of(page)


@pytest.mark.parametrize(("field", "typed", "message"), [
    ("name", {"name": "Bad_Name"}, "must be 3-63 characters of a-z, 0-9 and '-'"),
    ("github_url", {"github_url": "https://gitlab.com/acme/shop"}, "must be https://github.com/OWNER/REPO"),
    ("cores", {"cores": "9"}, "must be between 1 and 8 for lxc"),
    ("memory", {"deployment_type": "vm", "memory": "256"}, "must be between 512 and 32768 MB for vm"),
    ("port", {"port": "80"}, "greater than or equal to 1024"),
    ("env", {"env": f"API_SECRET={SECRET}\nNO_EQUALS_SIGN"}, "line 2 has no '='"),
    ("env", {"env": f"1BAD={SECRET}"}, "is not a variable name"),
])
def test_an_invalid_form_is_shown_again_with_422_and_the_message_beside_the_field(
        app, web_login, field, typed, message):
    client, _, _ = person(app, web_login, "alice")
    form = new_form(env=f"API_SECRET={SECRET}\nDEBUG=0", cores="2")
    form.update(typed)
    response = post_form(client, "/deployments/new", form)
    page = text_of(response)
    assert response.status_code == 422
    assert message in field_error(response, field)
    # The message is what the field describes itself with (beside a range note, for the resources).
    assert re.search(rf'aria-describedby="(?:[a-z_]+-range )?{field}-error"', page)
    # Every other field is left without a message.
    assert re.findall(r'<small class="field-error" id="([a-z_]+)-error">', page) == [field]
    # What was typed is kept.
    assert input_value(response, "name") == form["name"]
    assert input_value(response, "github_url") == form["github_url"]
    assert input_value(response, "cores") == form["cores"]
    assert textarea(response, "env") == form["env"]
    # The secret value is in the textarea it was typed into, and nowhere else.
    assert page.count(SECRET) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Deployment)) == 0
        db.session.remove()


def test_a_valid_form_creates_the_users_deployment_and_its_audit_entry(app, web_login):
    client, _, _ = person(app, web_login, "alice")
    response = post_form(client, "/deployments/new", new_form(
        cores="2", memory="1024", env=f"API_SECRET={SECRET}\n\n# a comment\nDEBUG=0", port="8000",
        start_command="gunicorn app:app"))
    assert response.status_code == 302
    assert response.headers["Location"] == "/deployments/web-shop"
    with app.app_context():
        deployment = Deployment.get_by_name("web-shop")
        owner = db.session.get(User, deployment.user_id)
        assert owner.username == "alice"
        assert deployment.status is DeploymentStatus.PENDING
        assert deployment.resources == {"cores": 2, "memory": 1024, "disk": 8}
        assert (deployment.framework, deployment.port, deployment.start_command) == ("flask", 8000,
                                                                                       "gunicorn app:app")
        assert envvars.decrypt(deployment.env_encrypted) == {"API_SECRET": SECRET, "DEBUG": "0"}
        deployment_id = deployment.id
        db.session.remove()
    assert platform_of(app).jobs.queue == [("provision", deployment_id)]
    [(username, audited_id, details)] = audit_entries(app, "deployment.create")
    assert (username, audited_id) == ("alice", deployment_id)
    assert details["via"] == "dashboard" and details["env_keys"] == ["API_SECRET", "DEBUG"]
    assert SECRET not in json.dumps(details)
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    assert "web-shop is being created" in text_of(page)
    assert SECRET not in text_of(page)


def test_a_taken_name_is_refused_beside_the_name(app, web_login, make_deployment):
    make_deployment(name="web-shop")  # the admin's: names are unique across users
    client, _, _ = person(app, web_login, "alice")
    response = post_form(client, "/deployments/new", new_form())
    assert response.status_code == 409
    assert field_error(response, "name") == "already taken"


def test_a_name_taken_meanwhile_is_refused_rather_than_reported_created(app, web_login, make_deployment,
                                                                        monkeypatch):
    make_deployment(name="web-shop")
    client, _, _ = person(app, web_login, "alice")
    token = csrf_of(client.get("/deployments/new"))
    real = Deployment.get_by_name.__func__
    calls = []

    def racing(cls, name):
        """The first look (the service's check) misses the other deployment, as when it is inserted just
        after; the database's unique index then refuses the insert."""
        calls.append(name)
        return None if len(calls) == 1 else real(cls, name)

    queued = list(platform_of(app).jobs.queue)
    monkeypatch.setattr(Deployment, "get_by_name", classmethod(racing))
    response = client.post("/deployments/new", data={"csrf_token": token, **new_form()})
    monkeypatch.undo()
    assert response.status_code == 409
    assert field_error(response, "name") == "already taken"
    assert platform_of(app).jobs.queue == queued  # no job for a deployment that was never stored
    assert [details for _, _, details in audit_entries(app, "deployment.create")
            if details.get("via") == "dashboard"] == []  # nor an audit entry for it


def test_a_form_without_a_type_says_so(app, web_login):
    client, _, _ = person(app, web_login, "alice")
    form = new_form()
    del form["deployment_type"]
    response = post_form(client, "/deployments/new", form)
    assert response.status_code == 422
    assert field_error(response, "deployment_type") == "is required"


# -- a deployment's page ----------------------------------------------------------------------------------


@pytest.fixture
def alices(app, web_login, make_deployment):
    """alice logged in with her deployment web-shop (pending): her client."""
    client, _, token = person(app, web_login, "alice")
    make_deployment(name="web-shop", token=token)
    return client


def test_the_page_shows_the_deployment(app, alices):
    page = alices.get("/deployments/web-shop")
    assert page.status_code == 200
    assert '<span class="badge status-pending"' in text_of(page)
    assert f'href="{REPO}"' in text_of(page)


def test_setting_a_variable_shows_its_key_with_a_masked_value_and_never_the_value(app, alices):
    response = post_form(alices, "/deployments/web-shop/env", {"env": f"API_KEY={SECRET}\nDEBUG=0"},
                         page="/deployments/web-shop")
    assert response.status_code == 302
    assert response.headers["Location"] == "/deployments/web-shop#env"
    page = alices.get("/deployments/web-shop")
    assert re.search(r"<code>API_KEY</code></th><td><code>\*{8}</code>", text_of(page))
    assert "<code>DEBUG</code>" in text_of(page)
    assert SECRET not in text_of(page)
    assert textarea(page, "env-lines") == ""
    with app.app_context():
        assert envvars.decrypt(Deployment.get_by_name("web-shop").env_encrypted) == {"API_KEY": SECRET, "DEBUG": "0"}
        db.session.remove()
    [(username, _, details)] = audit_entries(app, "deployment.env")
    assert details == {"via": "dashboard", "set": ["API_KEY", "DEBUG"], "deleted": []}

    removed = post_form(alices, "/deployments/web-shop/env/API_KEY/delete", page="/deployments/web-shop")
    assert removed.status_code == 302
    page = alices.get("/deployments/web-shop")
    assert "<code>API_KEY</code>" not in text_of(page) and "<code>DEBUG</code>" in text_of(page)
    with app.app_context():
        assert envvars.decrypt(Deployment.get_by_name("web-shop").env_encrypted) == {"DEBUG": "0"}
        db.session.remove()
    assert post_form(alices, "/deployments/web-shop/env/API_KEY/delete",
                     page="/deployments/web-shop").status_code == 404


@pytest.mark.parametrize(("lines", "message"), [("", "is empty"), ("NO_EQUALS", "line 1 has no '='"),
                                                (f"PORT={SECRET}", "PORT is set by the platform")])
def test_an_invalid_variable_is_refused_beside_the_editor_with_what_was_typed_in_it_alone(app, alices, lines,
                                                                                         message):
    response = post_form(alices, "/deployments/web-shop/env", {"env": lines}, page="/deployments/web-shop")
    assert response.status_code == 422
    assert message in field_error(response, "env")
    # What was typed comes back for a correction, in the editor alone (no-store), never in a message.
    page = text_of(response)
    editor = re.search(r'<textarea id="env-lines"[^>]*>([^<]*)</textarea>', page).group(1)
    assert html.unescape(editor) == lines
    assert page.count(SECRET) == (1 if SECRET in lines else 0)
    assert response.headers["Cache-Control"] == "no-store"
    assert stored(app, "web-shop")["env_encrypted"] is None or envvars.decrypt(
        stored(app, "web-shop")["env_encrypted"]) == {}


def test_an_invalid_port_is_shown_beside_the_port_field_and_not_saved(app, alices):
    response = post_form(alices, "/deployments/web-shop/settings",
                         {"port": "80", "build_command": "make build"}, page="/deployments/web-shop")
    assert response.status_code == 422
    assert "greater than or equal to 1024" in field_error(response, "port")
    assert 'id="setting-port" name="port" type="number" value="80"' in text_of(response)
    assert input_value(response, "setting-build_command") == "make build"  # kept as typed
    row = stored(app, "web-shop")
    assert (row["port"], row["build_command"]) == (None, None)


def test_a_valid_settings_change_is_saved(app, alices):
    response = post_form(alices, "/deployments/web-shop/settings",
                         {"port": "8080", "build_command": "make build", "health_check_path": "/healthz"},
                         page="/deployments/web-shop")
    assert response.status_code == 302
    assert response.headers["Location"] == "/deployments/web-shop#settings"
    row = stored(app, "web-shop")
    assert (row["port"], row["build_command"], row["health_check_path"]) == (8080, "make build", "/healthz")
    page = alices.get("/deployments/web-shop")
    assert input_value(page, "setting-port") == "8080"
    assert "Settings saved" in text_of(page)
    # An emptied field goes back to the recipe's.
    post_form(alices, "/deployments/web-shop/settings", {"port": "", "build_command": ""},
              page="/deployments/web-shop")
    row = stored(app, "web-shop")
    assert (row["port"], row["build_command"]) == (None, None)


def test_settings_saved_with_redeploy_now_say_so_when_the_redeploy_is_refused(app, alices):
    response = post_form(alices, "/deployments/web-shop/settings", {"port": "8080", "redeploy": "1"},
                         page="/deployments/web-shop", follow_redirects=True)
    assert stored(app, "web-shop")["port"] == 8080  # saved, whatever the page says
    assert "Settings saved" in text_of(response)
    assert "cannot deploy a deployment that is pending" in text_of(response)


def test_delete_with_a_wrong_name_is_refused_and_the_deployment_is_untouched(app, alices):
    before = database_state(app, "web-shop")
    response = post_form(alices, "/deployments/web-shop/delete", {"confirm": "web-sho"},
                         page="/deployments/web-shop")
    assert response.status_code == 422
    assert field_error(response, "confirm") == "type web-shop to confirm"
    assert database_state(app, "web-shop") == before


def test_delete_with_the_typed_name_deletes_the_deployment(app, alices, run_jobs):
    response = post_form(alices, "/deployments/web-shop/delete", {"confirm": " web-shop "},
                         page="/deployments/web-shop")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    deployment_id = stored(app, "web-shop")["id"]
    assert stored(app, "web-shop")["status"] is DeploymentStatus.DELETING
    assert [details["via"] for _, _, details in audit_entries(app, "deployment.delete")] == ["dashboard"]
    assert "web-shop is being deleted" in text_of(alices.get("/"))
    with app.app_context():
        run_jobs()
        assert db.session.get(Deployment, deployment_id).status is DeploymentStatus.DELETED
        db.session.remove()
    assert stored(app, "web-shop") is None
    assert alices.get("/deployments/web-shop").status_code == 404
    assert listed(alices.get("/")) == {}


# -- the build log stream ---------------------------------------------------------------------------------


def test_the_log_stream_sends_a_finished_releases_lines_then_its_end(app, alices):
    lines = [("step", "Cloning acme/shop-api"), ("out", "Installing <dependencies> & more"), ("error", "a warning")]
    add_release(app, "web-shop", version=1, status="live", lines=lines)
    response = alices.get("/deployments/web-shop/log/stream")
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-store"
    events = sse_events(response.get_data(as_text=True))
    assert events[0] == {"event": "release", "data": {"release": 1}, "id": None}
    line_events = [e for e in events if e["event"] == "line"]
    assert [(e["data"]["stream"], e["data"]["line"]) for e in line_events] == lines
    assert all(e["data"]["release"] == 1 and e["id"] == str(e["data"]["id"]) for e in line_events)
    assert events[-1] == {"event": "end", "data": {"release": 1, "status": "live"}, "id": None}

    # A browser that reconnects says the last id it saw, and gets only what followed.
    resumed = alices.get("/deployments/web-shop/log/stream", headers={"Last-Event-ID": line_events[0]["id"]})
    again = sse_events(resumed.get_data(as_text=True))
    assert [e["data"]["line"] for e in again if e["event"] == "line"] == [line for _, line in lines[1:]]
    assert again[-1]["event"] == "end"


def test_the_log_stream_of_an_older_release_and_of_one_that_does_not_exist(app, alices):
    add_release(app, "web-shop", version=1, status="failed", lines=[("error", "first")])
    add_release(app, "web-shop", version=2, status="live", lines=[("out", "second")])
    newest = sse_events(alices.get("/deployments/web-shop/log/stream").get_data(as_text=True))
    assert [e["data"]["line"] for e in newest if e["event"] == "line"] == ["second"]
    older = sse_events(alices.get("/deployments/web-shop/log/stream?release=1").get_data(as_text=True))
    assert [e["data"]["line"] for e in older if e["event"] == "line"] == ["first"]
    assert older[-1] == {"event": "end", "data": {"release": 1, "status": "failed"}, "id": None}
    assert alices.get("/deployments/web-shop/log/stream?release=9").status_code == 404


def test_the_log_stream_refuses_a_release_that_is_not_a_plain_number(app, alices):
    add_release(app, "web-shop", version=1, status="live", lines=[("out", "built")])
    for query in ("?release=\u00b2", "?release=abc", "?release="):
        assert alices.get(f"/deployments/web-shop/log/stream{query}").status_code == 404, query


def test_the_log_stream_ignores_a_last_event_id_that_is_not_a_plain_number(app, alices):
    add_release(app, "web-shop", version=1, status="live", lines=[("out", "built")])
    response = alices.get("/deployments/web-shop/log/stream", headers={"Last-Event-ID": "\u00b2"})
    assert response.status_code == 200
    events = sse_events(response.get_data(as_text=True))
    assert [e["data"]["line"] for e in events if e["event"] == "line"] == ["built"]
    assert events[-1]["event"] == "end"


def buttons(page):
    """{button id or label: whether it is enabled} of a deployment's page."""
    found = {}
    for attrs, label in re.findall(r'<button ([^>]*)>([^<]*)</button>', text_of(page)):
        ident = re.search(r'id="([^"]+)"', attrs)
        found[ident.group(1) if ident else label.strip()] = "disabled" not in attrs
    return found


def test_the_page_offers_only_what_the_services_would_take(app, alices):
    add_release(app, "web-shop", version=1, status="superseded")
    add_release(app, "web-shop", version=2, status="failed")
    add_release(app, "web-shop", version=3, status="live")
    change(app, "web-shop", status=DeploymentStatus.RUNNING, vm_id=4242, node="pve1", live_release=3)
    running = buttons(alices.get("/deployments/web-shop"))
    assert running["action-stop"] and running["action-restart"] and running["action-redeploy"]
    assert not running["action-start"]
    page = text_of(alices.get("/deployments/web-shop"))
    assert "Roll back to release 1" in page  # it served
    assert "Roll back to release 2" not in page and "Roll back to release 3" not in page  # failed; live
    change(app, "web-shop", status=DeploymentStatus.STOPPED)
    stopped = buttons(alices.get("/deployments/web-shop"))
    assert stopped["action-start"] and not stopped["action-stop"] and not stopped["action-redeploy"]
    assert "Roll back to release 1" not in text_of(alices.get("/deployments/web-shop"))
    # What the page does not offer, the service refuses: the page says why.
    refused = post_form(alices, "/deployments/web-shop/redeploy", page="/deployments/web-shop")
    assert refused.status_code == 409 and "start it first" in text_of(refused)
