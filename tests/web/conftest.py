"""Fixtures of the dashboard's tests: an app whose requests each run in their own app context, as they do when
served (tests/conftest.py keeps one context open for the whole test, which would share `g`, and with it
Flask-WTF's cached CSRF token, between requests and between clients), and logging in through the login form."""
import pytest

from app import db
from tests.helpers.accounts import admin_token
from tests.helpers.apps import create_test_app
from tests.web.helpers import csrf_of, login


@pytest.fixture
def app(database_url, unreachable_proxmox):
    """As tests/conftest.py's app, without an app context held open: a test reaches the database in
    `with app.app_context():` blocks of its own."""
    app = create_test_app(SQLALCHEMY_DATABASE_URI=database_url, PROXMOX_SETTINGS=unreachable_proxmox)
    admin_token(app)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def web_login():
    """web_login(client, username, password): log client in through the login form (asserting it worked); returns
    csrf(page), the CSRF token of a page (a response, its HTML, or a path that is then fetched with client)."""

    def log_in(client, username, password):
        response = login(client, username, password)
        assert response.status_code == 302, response.get_data(as_text=True)

        def csrf(page):
            return csrf_of(client.get(page) if isinstance(page, str) and page.startswith("/") else page)

        return csrf

    return log_in
