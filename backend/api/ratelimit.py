"""Rate limits (Flask-Limiter): per user for authenticated calls, per address otherwise.

Counts live in memory by default (one API process); RATELIMIT_STORAGE_URI=redis://... shares them
between processes. Each app gets its own Limiter (Flask-Limiter keeps its settings on the instance),
and the tighter per-route limits come from configuration, so operators tune them without code.
"""
from flask import g, request
from flask_limiter import Limiter

from backend.api.auth import identify

# Endpoint -> the setting that holds its limit (on top of RATELIMIT_DEFAULT for everything).
ROUTE_LIMITS = {
    "api.create_deployment": "RATELIMIT_CREATE",
    "api.create_token": "RATELIMIT_TOKENS",
    "api.list_tokens": "RATELIMIT_TOKENS",
    "api.revoke_token": "RATELIMIT_TOKENS",
    "api.create_user": "RATELIMIT_TOKENS",
    "api.github_webhook": "RATELIMIT_WEBHOOK",
    "api.login": "RATELIMIT_LOGIN",
    "api.change_own_password": "RATELIMIT_LOGIN",
}


def rate_key():
    user = identify()
    return f"user:{user.id}" if user is not None else f"addr:{request.remote_addr}"


def webhook_key():
    """GitHub sends every tenant's deliveries from the same few addresses: count per deployment instead."""
    return f"hook:{(request.view_args or {}).get('deployment_id', '')[:64]}"


def address_key():
    return f"addr:{request.remote_addr}"


def login_username_key():
    """The username a login tries. Route limits are counted as the view is called, after api_bp's body guard
    has read the body (g.json_body); bodies without a username in text share one count."""
    username = (g.get("json_body") or {}).get("username")
    return f"login:{username[:64]}" if isinstance(username, str) else "login:"


# Endpoints counted by something other than the caller, each limit counted apart by each key: a login is
# counted per address (one machine guessing many names) and per username (many machines guessing one).
ROUTE_KEYS = {"api.github_webhook": (webhook_key,), "api.login": (address_key, login_username_key)}


def init_app(app, exempt_blueprints=()):
    """Attach a limiter to app: the default limit everywhere, the tighter ones on ROUTE_LIMITS."""
    limiter = Limiter(key_func=rate_key, default_limits=[app.config["RATELIMIT_DEFAULT"]])
    limiter.init_app(app)
    for endpoint, setting in ROUTE_LIMITS.items():
        for key_func in ROUTE_KEYS.get(endpoint, (None,)):
            app.view_functions[endpoint] = limiter.limit(app.config[setting], key_func=key_func,
                                                         override_defaults=endpoint in ROUTE_KEYS)(
                app.view_functions[endpoint])
    for blueprint in exempt_blueprints:
        limiter.exempt(blueprint)
    app.extensions["rate_limiter"] = limiter
    return limiter
