"""A person's day with the dashboard, in chromium: log in by keyboard, create a deployment of flask-hello through
the form, watch its build log stream until it runs, open it, change its environment and see the new release, roll
back, stop and start it, read its metrics and runtime log, turn push-to-deploy on, delete it. Then what must not
happen: a member seeing another's deployment, a form accepted without its CSRF token, endless password guesses."""
import re

from playwright.sync_api import expect

from tests.helpers.network import call_api, fetch
from tests.helpers.simulation_server import running_simulation

SAMPLE = "https://github.com/paas-examples/flask-hello"
# A build in simulation installs Flask and gunicorn into a virtualenv: well under this, even on a loaded machine.
BUILD_WAIT_MS = 240_000


def log_in_by_keyboard(page, base, username, password):
    page.goto(base + "/login")
    expect(page.locator("#username")).to_be_focused()
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(re.escape(base) + r"/($|\?)"))


def wait_for_release(page, version):
    """The build log's stream reports the release finished live (its `end` event)."""
    expect(page.locator("#build-state")).to_have_text(f"Release {version} live.", timeout=BUILD_WAIT_MS)


def app_page_text(url):
    status, body = fetch(url)
    assert status == 200, (url, status)
    return body


def test_a_person_deploys_watches_changes_rolls_back_stops_starts_and_deletes_an_app(platform, context,
                                                                                     screenshots):
    base = platform.url
    page = context.new_page()
    page.goto(base + "/login")
    screenshots(page, "00-login")
    log_in_by_keyboard(page, base, "admin", platform.password)
    screenshots(page, "01-deployments-empty")

    # Create through the form: an error first, shown beside its field, then the right values.
    page.get_by_role("link", name="New", exact=True).click()
    page.fill("#name", "hello")
    page.fill("#github_url", "https://example.com/not-github")
    page.check("#type-lxc")
    page.fill("#env", "GREETING=Hello")
    page.click("text=Create deployment")
    expect(page.locator("#github_url-error")).to_contain_text("https://github.com/")
    expect(page.locator("#env")).to_have_value("GREETING=Hello")
    screenshots(page, "02-new-deployment-errors")
    page.fill("#github_url", SAMPLE)
    page.locator("summary").click()
    page.fill("#health_check_path", "/health")
    screenshots(page, "03-new-deployment")
    page.click("text=Create deployment")
    page.wait_for_url(base + "/deployments/hello")

    # The build log streams in as the guest is provisioned and the app built; the badge follows live.
    expect(page.locator("#build-log")).to_contain_text("git clone", timeout=BUILD_WAIT_MS)
    wait_for_release(page, 1)
    expect(page.locator("#build-log")).to_contain_text("release 1 is live")
    expect(page.locator("#summary .badge").first).to_have_text("running")
    screenshots(page, "04-deployment-running")
    page.locator("#build-log").scroll_into_view_if_needed()
    page.evaluate("window.scrollTo(0, 0)")
    screenshots(page, "04-deployment-running-window", full_page=False)

    page.get_by_role("link", name="Deployments", exact=True).click()
    expect(page.locator("#deployments")).to_contain_text("hello")
    expect(page.locator('[data-status-for]').first).to_have_text("running")
    expect(page.locator("#nodes")).to_contain_text("pve1")
    screenshots(page, "04-deployments")
    page.get_by_role("link", name="hello", exact=True).click()

    url = page.locator("#app-url").get_attribute("href")
    assert "Hello from Flask" in app_page_text(url)
    visit = context.new_page()
    visit.goto(url)
    expect(visit.locator("h1")).to_have_text("Hello from Flask")
    visit.close()

    # A new value: a new release, and the app says it; the value itself is never shown.
    page.fill("#env-lines", "GREETING=Bonjour")
    page.click("text=Save variables")
    expect(page.locator(".flash-success")).to_contain_text("Release 2 is being built")
    wait_for_release(page, 2)
    assert "Bonjour from Flask" in app_page_text(url)
    expect(page.locator("#env-table")).to_contain_text("GREETING")
    assert "Bonjour" not in page.content()

    # Roll back to release 1: its code and its environment again.
    page.get_by_role("button", name="Roll back to release 1").click()
    expect(page.locator(".flash-success")).to_contain_text("brings back release 1")
    wait_for_release(page, 3)
    assert "Hello from Flask" in app_page_text(url)
    expect(page.locator("#release-3")).to_contain_text("rollback of 1")
    screenshots(page, "05-deployment-rolled-back")

    # Stop and start: the badge changes without a reload (the status stream).
    page.click("#action-stop")
    expect(page.locator("#summary .badge").first).to_have_text("stopped", timeout=60_000)
    assert fetch(url, timeout=2)[0] is None
    page.click("#action-start")
    expect(page.locator("#summary .badge").first).to_have_text("running", timeout=60_000)
    assert "Hello from Flask" in app_page_text(url)

    # The guest's load as charts, and the app's own output.
    expect(page.locator("#chart-cpu canvas")).to_have_count(1)
    page.get_by_label("last day").check()
    expect(page.locator("#chart-memory canvas")).to_have_count(1)
    expect(page.locator("#runtime-output pre")).to_contain_text("GET /health")
    screenshots(page, "06-deployment-metrics-and-logs")

    # Push-to-deploy: the payload URL and the secret, once.
    page.click("#webhook-enable")
    secret = page.locator("#webhook-secret").input_value()
    assert len(secret) >= 32
    expect(page.locator("#webhook-url")).to_have_value(re.compile(r"/api/webhooks/github/"))
    screenshots(page, "07-webhook-enabled")
    page.goto(base + "/deployments/hello")
    assert secret not in page.content()

    # Delete, confirmed by typing the name: a wrong one is refused beside the field.
    page.fill("#confirm", "hellO")
    page.click("#delete-button")
    expect(page.locator("#confirm-error")).to_contain_text("type hello")
    page.fill("#confirm", "hello")
    page.click("#delete-button")
    page.wait_for_url(base + "/")
    expect(page.locator(".flash-success")).to_contain_text("hello is being deleted")
    expect(page.locator("#deployments")).not_to_contain_text("hello", timeout=60_000)
    status, body = call_api(base, "GET", "/api/deployments/hello", token=platform.token)
    assert status == 404 or body["deployment"]["status"] in ("deleting", "deleted")
    assert context.errors == []


def test_a_member_never_sees_another_persons_deployment(platform, context):
    base, admin = platform.url, platform.token
    status, created = call_api(base, "POST", "/api/deployments", token=admin, body={
        "name": "admins-app", "deployment_type": "lxc", "framework": "flask", "github_url": SAMPLE})
    assert status == 201
    status, member = call_api(base, "POST", "/api/users", token=admin, body={"username": "mallory"})
    assert status == 201
    assert call_api(base, "PUT", "/api/me/password", token=member["token"],
                    body={"new_password": "correct horse battery staple"})[0] == 204

    page = context.new_page()
    log_in_by_keyboard(page, base, "mallory", "correct horse battery staple")
    expect(page.locator("#deployments")).to_contain_text("No deployments yet")
    assert "admins-app" not in page.content()
    for path in ("/deployments/admins-app", f"/deployments/{created['deployment']['id']}",
                 "/deployments/admins-app/log/stream", "/deployments/admins-app/metrics.json"):
        response = page.goto(base + path)
        assert response.status == 404, path
    expect(page.locator("h1")).to_have_text("Not found")
    # Nor the admin pages.
    assert page.goto(base + "/admin/users").status == 404
    assert context.errors == []


def test_a_form_sent_without_its_csrf_token_is_refused(platform, context):
    page = context.new_page()
    log_in_by_keyboard(page, platform.url, "admin", platform.password)
    page.goto(platform.url + "/deployments/new")
    page.fill("#name", "csrf-less")
    page.fill("#github_url", SAMPLE)
    page.evaluate("document.querySelector('#new-deployment input[name=csrf_token]').remove()")
    page.click("text=Create deployment")
    expect(page.locator("h1")).to_have_text("The form could not be accepted")
    assert call_api(platform.url, "GET", "/api/deployments/csrf-less", token=platform.token)[0] == 404


def test_an_admin_makes_a_token_manages_users_and_reads_the_audit_log(platform, context, screenshots):
    base = platform.url
    page = context.new_page()
    log_in_by_keyboard(page, base, "admin", platform.password)

    page.get_by_role("link", name="admin", exact=True).click()
    page.fill("#name", "laptop")
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token").input_value()
    assert call_api(base, "GET", "/api/me", token=token)[0] == 200
    screenshots(page, "08-account-new-token")
    page.goto(base + "/account")
    assert token not in page.content()

    page.get_by_role("link", name="Admin", exact=True).click()
    page.fill("#username", "bob")
    page.fill("#password", "a long enough password")
    page.get_by_role("button", name="Create user").click()
    expect(page.locator("#new-token")).not_to_have_value("")
    screenshots(page, "09-admin-users")
    page.get_by_role("link", name="bob", exact=True).first.click()
    expect(page.locator("h1")).to_contain_text("bob")
    screenshots(page, "09-admin-user")

    page.goto(base + "/admin/audit?action=user.")
    expect(page.locator("table")).to_contain_text("user.create")
    screenshots(page, "10-admin-audit")
    page.goto(base + "/admin/nodes")
    expect(page.locator("table")).to_contain_text("pve2")
    screenshots(page, "11-admin-nodes")
    assert context.errors == []


def test_every_page_reads_at_375_pixels_wide(platform, browser, screenshots):
    status, _ = call_api(platform.url, "POST", "/api/deployments", token=platform.token, body={
        "name": "narrow-app", "deployment_type": "lxc", "framework": "flask", "github_url": SAMPLE})
    assert status == 201
    context = browser.new_context(viewport={"width": 375, "height": 812})
    page = context.new_page()
    page.goto(platform.url + "/login")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshots(page, "mobile-login")
    log_in_by_keyboard(page, platform.url, "admin", platform.password)
    for path, name in (("/", "mobile-deployments"), ("/deployments/new", "mobile-new"),
                       ("/deployments/narrow-app", "mobile-deployment"), ("/account", "mobile-account"),
                       ("/admin/users", "mobile-admin-users"), ("/admin/users/admin", "mobile-admin-user"),
                       ("/admin/audit", "mobile-admin-audit"), ("/admin/nodes", "mobile-admin-nodes")):
        page.goto(platform.url + path)
        # Nothing wider than the screen but what scrolls inside its own box (the tables).
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, (path, width)
        screenshots(page, name)
    context.close()


def test_five_wrong_passwords_slow_the_next_login_down(tmp_path, context):
    """With the default limit (RATELIMIT_LOGIN, 5 a minute per address and per username)."""
    with running_simulation(tmp_path / "simulation") as platform:
        page = context.new_page()
        for attempt in range(5):
            page.goto(platform.url + "/login")
            page.fill("#username", "admin")
            page.fill("#password", f"wrong password {attempt}")
            page.click("button[type=submit]")
            expect(page.locator("#login-error")).to_have_text("Invalid username or password.")
        page.goto(platform.url + "/login")
        page.fill("#username", "admin")
        page.fill("#password", platform.password)
        with page.expect_response(lambda r: r.url.endswith("/login") and r.request.method == "POST") as answer:
            page.click("button[type=submit]")
        assert answer.value.status == 429
        assert int(answer.value.headers["retry-after"]) > 0
        expect(page.locator("h1")).to_have_text("Slow down")
