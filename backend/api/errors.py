"""One JSON error shape for every error source, applied at the HTTP edge only."""
import logging

from flask import g, jsonify, request
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from backend.errors import ConcurrentUpdate, DomainError
from backend.extensions import db
from backend.schemas.validation import validation_failed_from_pydantic

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    401: "unauthorized",
    403: "forbidden",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


class InternalResponseError(Exception):
    """Carries the replacement response out of spectree's after hook."""

    def __init__(self, response):
        super().__init__("response failed validation")
        self.response = response


def error_response(status, code, message, fields=None, headers=None):
    body = {
        "success": False,
        "error": {
            "code": code,
            "message": message,
            "fields": fields or {},
            "request_id": g.get("request_id"),
        },
    }
    response = jsonify(body)
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _for_a_person(exc):
    """A routing error (no route, a wrong method) outside the API and the health check, asked by a browser: the
    dashboard's entry point answers it with a page (app.extensions["page_error"]), not this JSON."""
    path = request.path
    return (request.blueprint is None and exc.code in (404, 405) and not path.startswith("/api/")
            and path not in ("/api", "/health") and request.accept_mimetypes.accept_html)


def register_error_handlers(app):
    @app.errorhandler(DomainError)
    def handle_domain_error(exc):
        # Whatever the refused request wrote or locked (a quota check locks its user) is undone now,
        # not when the app context ends.
        db.session.rollback()
        return error_response(exc.status, exc.code, exc.message, exc.fields, headers=getattr(exc, "headers", None))

    @app.errorhandler(ValidationError)
    def handle_pydantic_error(exc):
        return handle_domain_error(validation_failed_from_pydantic(exc))

    @app.errorhandler(HTTPException)
    def handle_http_error(exc):
        page = app.extensions.get("page_error")
        if page is not None and _for_a_person(exc):
            return page(exc)
        headers = {}
        if exc.code == 405 and exc.valid_methods:
            headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        code = HTTP_CODES.get(exc.code, exc.name.lower().replace(" ", "_"))
        message = exc.description or exc.name
        if exc.code == 404:
            message = "no such resource"
        if exc.code == 429:
            message = f"too many requests ({exc.description}); retry after the time in Retry-After"
        return error_response(exc.code, code, message, headers=headers)

    @app.errorhandler(InternalResponseError)
    def handle_invalid_response(exc):
        return exc.response

    @app.errorhandler(StaleDataError)
    def handle_stale_row(exc):
        # A route's plain commit lost a race for a deployment's row (a job changed it meanwhile): the
        # services' answer for that, 409, rather than a 500.
        return handle_domain_error(ConcurrentUpdate("the deployment was changed meanwhile; reload and retry"))

    @app.errorhandler(OperationalError)
    def handle_database_unavailable(exc):
        log.error("database error: %s", exc.__class__.__name__, exc_info=exc)
        return error_response(503, "database_unavailable", "the database is unavailable; try again shortly")

    @app.errorhandler(SQLAlchemyError)
    def handle_database_error(exc):
        log.error("database error", exc_info=exc)
        return error_response(500, "internal_error", "internal server error")

    @app.errorhandler(Exception)
    def handle_unexpected(exc):
        log.error("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "internal server error")
