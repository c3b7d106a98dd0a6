"""The suite's users and API tokens, and the test client that authenticates with them."""
from flask.testing import FlaskClient
from werkzeug.datastructures import Headers

from app import db

ADMIN_NAME = "test-admin"


def make_user(app, username, role="member", password=None, **fields):
    """A user and a token of theirs: (user id, token); with password, that password too."""
    from backend.services import accounts, passwords

    with app.app_context():
        user = accounts.create_user(username, role, **fields)
        token, _ = accounts.issue_token(user, "tests")
        if password is not None:
            passwords.set_password(user, password)
        user_id = user.id
        db.session.remove()
    return user_id, token


def admin_token(app):
    """The token of the suite's admin in app's database, made on first use."""
    token = app.extensions.get("test_admin_token")
    if token is None:
        _, token = make_user(app, ADMIN_NAME, "admin")
        app.extensions["test_admin_token"] = token
    return token


class AuthedClient(FlaskClient):
    """A test client that authenticates as the suite's admin unless told otherwise.

    token="..." sends that token, token=None sends none; an explicit Authorization header wins.
    """

    def open(self, *args, token="admin", **kwargs):
        headers = Headers(kwargs.pop("headers", None) or {})
        path = args[0] if args and isinstance(args[0], str) else ""
        if "Authorization" not in headers and token is not None and path.startswith("/api/"):
            token = admin_token(self.application) if token == "admin" else token
            headers["Authorization"] = f"Bearer {token}"
        return super().open(*args, headers=headers, **kwargs)
