"""HTTP only: the api_bp blueprint, request parsing, serialisation and the error shape."""
import json
import re
import uuid

from flask import Blueprint, current_app, g, request

from backend.api.auth import require_token
from backend.api.errors import register_error_handlers
from backend.api.spec import spec
from backend.errors import DomainError, ValidationFailed

api_bp = Blueprint("api", __name__, url_prefix="/api")
# First of the blueprint's hooks: an unauthenticated request learns nothing else (not even a body error).
api_bp.before_request(require_token)

REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _no_duplicate_keys(pairs):
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key")
    return dict(pairs)


def _no_constants(name):
    raise ValueError(f"{name} is not JSON")


@api_bp.before_request
def parse_json_body():
    """Bodies of routes that take JSON must be a well-formed JSON object, sent as JSON."""
    view = current_app.view_functions.get(request.endpoint)
    metadata = spec.get_function_metadata(view) if view else None
    if metadata is None or metadata.json is None or request.method not in ("POST", "PUT", "PATCH"):
        return
    if not request.is_json:
        raise DomainError("send the body as JSON (Content-Type: application/json)",
                          code="unsupported_media_type", status=415)
    raw = request.get_data(cache=True)
    try:
        body = json.loads(raw, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise DomainError("the body is not well-formed JSON (duplicate keys, NaN and Infinity count as malformed)",
                          code="malformed_json", status=400) from None
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object", fields={"body": "must be a JSON object"})


def _assign_request_id():
    sent = request.headers.get("X-Request-ID", "")
    g.request_id = sent if REQUEST_ID_RE.fullmatch(sent) else uuid.uuid4().hex


def _echo_request_id(response):
    response.headers["X-Request-ID"] = g.get("request_id") or uuid.uuid4().hex
    return response


def init_app(app):
    """Attach the API, health check, error handlers, request ids and the OpenAPI document."""
    from backend.api import deployments, meta, releases, users, webhooks  # noqa: F401  (routes register on api_bp)
    from backend.api.health import health_bp
    from backend.api import ratelimit

    if app.config.get("TRUSTED_PROXIES"):
        # Behind a reverse proxy: take the client's address (rate limits, audit log) from X-Forwarded-For,
        # trusting only as many hops as configured.
        from werkzeug.middleware.proxy_fix import ProxyFix  # noqa: PLC0415

        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    app.before_request(_assign_request_id)
    app.after_request(_echo_request_id)
    register_error_handlers(app)
    app.register_blueprint(api_bp)
    app.register_blueprint(health_bp)
    ratelimit.init_app(app, exempt_blueprints=[health_bp])
    spec.register(app)
