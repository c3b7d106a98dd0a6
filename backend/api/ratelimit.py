"""Rate limits (Flask-Limiter): per user for authenticated calls, per address otherwise.

Counts live in memory by default (one API process); RATELIMIT_STORAGE_URI=redis://... shares them
between processes. Each app gets its own Limiter (Flask-Limiter keeps its settings on the instance),
and the tighter per-route limits come from configuration, so operators tune them without code.
"""
import hashlib

from flask import g, request, session
from flask_limiter import Limiter

from backend.api.auth import identify
from backend.limits import (
    PASSWORD_GUESSES_BY_ADDRESS,
    PASSWORD_GUESSES_BY_USERNAME,
    address_count,
    username_count,
)

# Endpoint -> the setting that holds its limit (on top of RATELIMIT_DEFAULT for everything).
ROUTE_LIMITS = {
    "api.create_deployment": "RATELIMIT_CREATE",
    # Each of these makes work on the cluster or reloads the router for every app: counted like a create.
    "api.add_domain": "RATELIMIT_CREATE",
    "api.remove_domain": "RATELIMIT_CREATE",
    "api.create_backup": "RATELIMIT_CREATE",
    "api.restore_backup": "RATELIMIT_CREATE",
    "api.create_token": "RATELIMIT_TOKENS",
    "api.list_tokens": "RATELIMIT_TOKENS",
    "api.revoke_token": "RATELIMIT_TOKENS",
    "api.create_user": "RATELIMIT_TOKENS",
    "api.github_webhook": "RATELIMIT_WEBHOOK",
}


def rate_key():
    """A token's user; else a dashboard session (its cookie carries a random id that only a login gives: people
    behind one address are counted apart); else the address."""
    user = identify()
    if user is not None:
        return f"user:{user.id}"
    session_id = session.get("sid") if request.path[:5] != "/api/" else None
    if isinstance(session_id, str):
        return "session:" + hashlib.sha256(session_id.encode()).hexdigest()[:32]
    return f"addr:{request.remote_addr}"


def webhook_key():
    """GitHub sends every tenant's deliveries from the same few addresses: count per deployment instead."""
    return f"hook:{(request.view_args or {}).get('deployment_id', '')[:64]}"


def address_key():
    return address_count(request.remote_addr)


def login_username_key():
    """The username a login tries. Route limits are counted as the view is called, after api_bp's body guard
    has read the body (g.json_body); bodies without a username in text share one count."""
    return username_count((g.get("json_body") or {}).get("username"))


def own_username_key():
    """A password change guesses at the caller's own password."""
    user = identify()
    return username_count(user.username if user is not None else None)


# Endpoints counted by something other than the caller.
ROUTE_KEYS = {"api.github_webhook": (webhook_key,)}
# Endpoints that try a password: counted per address (one machine guessing many names) and per username (many
# machines guessing one), in the counts the dashboard's password forms share (backend/limits.py).
PASSWORD_ENDPOINTS = {"api.login": login_username_key, "api.change_own_password": own_username_key}


def init_app(app, exempt_blueprints=()):
    """Attach a limiter to app: the default limit everywhere, the tighter ones on ROUTE_LIMITS."""
    limiter = Limiter(key_func=rate_key, default_limits=[app.config["RATELIMIT_DEFAULT"]])
    limiter.init_app(app)
    for endpoint, setting in ROUTE_LIMITS.items():
        for key_func in ROUTE_KEYS.get(endpoint, (None,)):
            app.view_functions[endpoint] = limiter.limit(app.config[setting], key_func=key_func,
                                                         override_defaults=endpoint in ROUTE_KEYS)(
                app.view_functions[endpoint])
    for endpoint, username_key in PASSWORD_ENDPOINTS.items():
        view = app.view_functions[endpoint]
        for scope, key_func in ((PASSWORD_GUESSES_BY_ADDRESS, address_key),
                                (PASSWORD_GUESSES_BY_USERNAME, username_key)):
            view = limiter.shared_limit(app.config["RATELIMIT_LOGIN"], scope, key_func=key_func)(view)
        app.view_functions[endpoint] = view
    for blueprint in exempt_blueprints:
        limiter.exempt(blueprint)
    app.extensions["rate_limiter"] = limiter
    return limiter
