"""The dashboard in a real browser: Playwright for Python driving Debian's chromium (the `chromium` package, which
.ci/run installs; Playwright downloads no browser), against `python app.py --simulate` as a process.

Screenshots of every page go to $PAAS_SCREENSHOTS when set (docs/screenshots/ holds the chosen ones), else to
the test's temporary directory."""
import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.helpers.simulation_server import running_simulation

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Chromium on a machine without internet: no background connections, no sandbox as root, no GPU.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
# Every login of a test module comes from 127.0.0.1: the module's server allows more than the default, and the
# test of the limit itself starts a server with the default.
TEST_LOGIN_LIMIT = "60 per minute"


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        message = "Debian's chromium is not installed (apt-get install chromium; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_simulation(tmp_path_factory.mktemp("simulation"), RATELIMIT_LOGIN=TEST_LOGIN_LIMIT) as platform:
        yield platform


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory):
    """shoot(page, name, full_page=True): a PNG of page (all of it, or what the window shows) as name.png."""
    folder = Path(os.environ.get("PAAS_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)

    def shoot(page, name, full_page=True):
        page.screenshot(path=str(folder / f"{name}.png"), full_page=full_page)

    shoot.folder = folder
    return shoot


@pytest.fixture
def context(browser):
    """A fresh browser profile (no cookies) at a laptop's width. .errors collects what went wrong in its pages:
    script errors, console errors (a CSP violation among them) and assets or requests that failed; a page itself
    answering 4xx (a refused form, a 404) is the test's to check, not an error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.errors = []

    def console(message):
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            context.errors.append(message.text)

    def response(answer):
        if answer.status >= 400 and answer.request.resource_type != "document":
            context.errors.append(f"{answer.status} {answer.request.method} {answer.url}")

    def watch(page):
        page.on("console", console)
        page.on("response", response)
        page.on("pageerror", lambda error: context.errors.append(str(error)))
    context.on("page", watch)
    context.set_default_timeout(20_000)
    yield context
    context.close()
