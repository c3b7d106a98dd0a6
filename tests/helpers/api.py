"""Driving the API through a test client: request bodies."""


def deployment_payload(**overrides):
    """A valid create body; tests override what they are about."""
    body = {
        "name": "shop-api",
        "deployment_type": "lxc",
        "framework": "flask",
        "github_url": "https://github.com/acme/shop-api",
    }
    body.update(overrides)
    return body
