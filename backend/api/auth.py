"""Who is calling: bearer tokens, the public allow-list, roles, and the caller's address for the audit log."""
from flask import current_app, g, request

from backend.errors import Forbidden, Unauthorized
from backend.services import accounts, audit

# Endpoints anyone may call. Everything else under /api needs a valid token (a test walks the url map).
PUBLIC_ENDPOINTS = frozenset({
    "api.openapi_document",   # the API description
    "api.github_webhook",     # GitHub cannot send a token; the delivery carries its own HMAC signature
    "api.login",              # exchanges a username and password for a token (rate limited per address and name)
})
_UNSET = object()


def bearer_token():
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def identify():
    """The calling user, or None (no token, or one that is unknown, revoked, expired or whose user is disabled).

    Worked out once per request (kept on the request, not on g, which an app context shared by
    several requests would carry over): the rate limiter's key and the authentication check share it.
    """
    user = request.environ.get("paas.caller", _UNSET)
    if user is _UNSET:
        found = accounts.authenticate(bearer_token())
        user = found[0] if found else None
        request.environ["paas.caller"] = user
    return user


def require_token():
    """Before every /api request: refuse it with 401 unless it is public or carries a valid token."""
    if request.endpoint in PUBLIC_ENDPOINTS or request.method == "OPTIONS":
        return None
    if identify() is None:
        raise Unauthorized("a valid API token is required: send Authorization: Bearer <token> "
                           "(manage_db.py create-user makes the first one)")
    return None


def caller():
    """The authenticated user of this request (require_token has run)."""
    user = identify()
    if user is None:  # a route outside the API reached this: refuse rather than run unscoped
        raise Unauthorized("a valid API token is required")
    return user


def require_admin():
    user = caller()
    if not user.is_admin:
        raise Forbidden("this needs an admin token")
    return user


def client_address():
    return request.remote_addr


def quota_defaults():
    return accounts.quota_defaults(current_app.config)


def audit_action(action, deployment=None, target=None, user=_UNSET, **details):
    """Record who (the caller) did what from which address, in the audit log."""
    return audit.record(action, user=caller() if user is _UNSET else user, deployment=deployment, target=target,
                        ip_address=client_address(), request_id=g.get("request_id"), details=details)


def audit_in_transaction(action, deployment=None, **details):
    """audit_action's entry added to the caller's transaction: written by its commit, with the action."""
    return audit.record(action, user=caller(), deployment=deployment, ip_address=client_address(),
                        request_id=g.get("request_id"), details=details, commit=False)
