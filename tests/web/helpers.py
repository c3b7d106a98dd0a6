"""Driving the dashboard as a browser does: its forms' CSRF tokens, logging in through the login form, and the
values a page shows once."""
import html
import re

from tests.helpers.accounts import make_user

# The password the dashboard's tests give people.
PASSWORD = "correct horse battery staple"

CSRF_RE = re.compile(r'<input type="hidden" name="csrf_token" value="([^"]+)">')
NEW_TOKEN_RE = re.compile(r'<input id="new-token"[^>]*\svalue="([^"]+)"')


def text_of(page):
    """A response's HTML (or the text itself)."""
    return page if isinstance(page, str) else page.get_data(as_text=True)


def csrf_of(page):
    """The CSRF token of the first form on page (a response or its HTML)."""
    match = CSRF_RE.search(text_of(page))
    assert match, "the page has no form with a CSRF token"
    return html.unescape(match.group(1))


def new_token_of(page):
    """The API token a page shows once (the readonly input #new-token), or None."""
    match = NEW_TOKEN_RE.search(text_of(page))
    return html.unescape(match.group(1)) if match else None


def login(client, username, password, **kwargs):
    """GET /login, then POST its form: the POST's response (302 on success)."""
    token = csrf_of(client.get("/login"))
    return client.post("/login", data={"csrf_token": token, "username": username, "password": password,
                                       "next": "/"}, **kwargs)


def post_form(client, path, data=None, page=None, **kwargs):
    """POST a form to path with a CSRF token taken from page (a path to GET, default the one posted to)."""
    source = client.get(page or path)
    return client.post(path, data={"csrf_token": csrf_of(source), **(data or {})}, **kwargs)


def person(app, web_login, username, role="member"):
    """A user with PASSWORD, logged in on a client of their own: (client, csrf(page), API token)."""
    _, token = make_user(app, username, role, password=PASSWORD)
    client = app.test_client()
    return client, web_login(client, username, PASSWORD), token
