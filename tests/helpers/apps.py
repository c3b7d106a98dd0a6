"""Apps for tests: every app a test builds comes from create_test_app, so its test_client() authenticates."""
from app import create_app
from tests.helpers.accounts import AuthedClient


def create_test_app(config_name="testing", **config):
    """create_app(config_name, **config) whose test_client() is an AuthedClient (the suite's admin by default)."""
    app = create_app(config_name, **config)
    app.test_client_class = AuthedClient
    return app
