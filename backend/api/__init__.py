"""HTTP only: the api_bp blueprint, request parsing, serialisation and the error shape."""
import re
import uuid

from flask import Blueprint, current_app, g, request

from backend.api.auth import require_token
from backend.api.errors import register_error_handlers
from backend.api.spec import spec
from backend.errors import DomainError, ValidationFailed
from backend.extensions import db
from backend.jsonbody import parse_json_object

api_bp = Blueprint("api", __name__, url_prefix="/api")
# First of the blueprint's hooks: an unauthenticated request learns nothing else (not even a body error).
api_bp.before_request(require_token)

REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


# Routes that read their body themselves, after a check that must come first (the webhook's signature).
READS_OWN_BODY = {"api.github_webhook"}
# Routes whose body has no schema to declare (a map of variables), read from g.json_body.
TAKES_FREE_FORM_BODY = {"api.patch_env"}
BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def _declares_json(view):
    metadata = spec.get_function_metadata(view) if view else None
    return metadata is not None and metadata.json is not None


@api_bp.before_request
def parse_json_body():
    """Every body sent to the API must be a well-formed JSON object, sent as JSON (jsonbody's strict rules).

    Routes that declare a body need one; the others take none, or an empty object, so that nothing the
    client sent is silently ignored. The webhook checks its signature, then parses the same way.
    """
    if request.method not in BODY_METHODS or request.endpoint in READS_OWN_BODY:
        return
    view = current_app.view_functions.get(request.endpoint)
    declared = _declares_json(view)
    has_body = bool(request.content_length) or request.headers.get("Transfer-Encoding", "").lower() == "chunked"
    if not has_body and not declared:
        return
    if not request.is_json:
        raise DomainError("send the body as JSON (Content-Type: application/json)",
                          code="unsupported_media_type", status=415)
    g.json_body = parse_json_object(request.get_data(cache=True))
    if g.json_body and not declared and request.endpoint not in TAKES_FREE_FORM_BODY:
        raise ValidationFailed("this request takes no body", fields=dict.fromkeys(g.json_body, "unknown field"))


def _assign_request_id():
    sent = request.headers.get("X-Request-ID", "")
    g.request_id = sent if REQUEST_ID_RE.fullmatch(sent) else uuid.uuid4().hex


def _echo_request_id(response):
    response.headers["X-Request-ID"] = g.get("request_id") or uuid.uuid4().hex
    return response


READ_METHODS = ("GET", "HEAD")


def _read_in_autocommit():
    """An API read on PostgreSQL runs its statements in autocommit: no BEGIN and ROLLBACK round trips around
    the two or three statements it makes (on a GET by id they were half of the database's share).

    What it sees is unchanged: under READ COMMITTED, PostgreSQL's default, every statement takes its own
    snapshot inside a transaction or not. Not MariaDB (repeatable read: one snapshot per transaction) nor SQLite.
    A write a read makes (the token's last use) commits at once, as it did with its own commit.
    """
    if (request.method in READ_METHODS and request.blueprint == "api" and not db.session().in_transaction()
            and db.engine.dialect.name == "postgresql"):
        db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        g.read_in_autocommit = True


def _end_autocommit_read(exc):
    """Hand the autocommit connection back now (its isolation level reset): a session that outlives the
    request (an app context around several, as in tests) must not write through it afterwards."""
    if g.pop("read_in_autocommit", False):
        db.session.rollback()


def init_app(app):
    """Attach the API, health check, error handlers, request ids and the OpenAPI document."""
    # Here, not at the top: the route modules import api_bp from this module and register on it.
    from backend.api import backups, deployments, domains, meta, metrics, ratelimit, releases, users, webhooks  # noqa: F401, PLC0415 - the views import api_bp from here
    from backend.api.health import health_bp  # noqa: PLC0415 - as above

    if app.config.get("TRUSTED_PROXIES"):
        # Behind a reverse proxy: take the client's address (rate limits, audit log) from X-Forwarded-For,
        # trusting only as many hops as configured.
        from werkzeug.middleware.proxy_fix import ProxyFix  # noqa: PLC0415 - only behind trusted proxies

        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    app.before_request(_assign_request_id)
    # Before the rate limiter's hook, which identifies the caller (a query).
    app.before_request(_read_in_autocommit)
    app.teardown_request(_end_autocommit_read)
    app.after_request(_echo_request_id)
    register_error_handlers(app)
    app.register_blueprint(api_bp)
    app.register_blueprint(health_bp)
    ratelimit.init_app(app, exempt_blueprints=[health_bp])
    spec.register(app)
