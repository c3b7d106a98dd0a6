"""The OpenAPI document and request validation, both generated from the pydantic schemas."""
import logging

from flask import Response as FlaskResponse
from flask import current_app, make_response
from spectree import SecurityScheme, SpecTree
from spectree.models import SecuritySchemeData
from spectree.plugins.flask_plugin import FlaskPlugin
from spectree.utils import get_model_key, hash_module_path

from backend.api.docs_pages import PAGE_TEMPLATES
from backend.api.errors import InternalResponseError, error_response
from backend.schemas.common import ErrorResponse
from backend.schemas.validation import validation_failed_from_pydantic

log = logging.getLogger(__name__)


def _raise_validation_error(request, response, error, instance, *args):
    """Spectree hook: replace its own 422 body with our error shape."""
    if error is not None:
        raise validation_failed_from_pydantic(error)


def _hide_response_validation_error(request, response, error, instance, *args):
    """Spectree hook: a response that breaks its own schema is our bug; log it, answer a plain 500."""
    if error is not None:
        log.error("response to %s %s does not match its schema: %s", request.method, request.path,
                  _without_values(error))
        raise InternalResponseError(error_response(500, "internal_error", "internal server error"))


def _without_values(error):
    """Where and how an answer broke its schema, never the values (pydantic's text quotes them, and an
    answer may carry a secret shown once: a token, a webhook or notification secret)."""
    try:
        problems = error.errors(include_url=False, include_input=False)
    except (AttributeError, TypeError):
        return error.__class__.__name__
    return "; ".join(f"{'.'.join(map(str, p.get('loc', ()))) or 'body'}: {p.get('msg')}" for p in problems)


# Spectree names a component by the schema and a hash of its module. The schemas lived in one module,
# backend.api.schemas, until they were split by resource into backend/schemas/; they keep that module's
# hash, so the document (and the type names of clients generated from it) does not change with the files.
# A schema's name is unique across backend/schemas/ (tests/api/test_meta.py checks).
SCHEMA_SUFFIX = hash_module_path("backend.api.schemas")


def component_name(model):
    if model.__module__.startswith("backend.schemas."):
        return f"{model.__name__}.{SCHEMA_SUFFIX}"
    return get_model_key(model)


class _Plugin(FlaskPlugin):
    """Spectree's Flask plugin, checking answers against their schema only where VALIDATE_RESPONSES says so.

    Requests are always validated. An answer's check re-validates the whole body (a list page: every
    deployment in it), which production skips (the tests check every answer they get: TestingConfig).
    """

    def validate_response(self, resp, resp_model, skip_validation, force_resp_serialize):
        if isinstance(resp, FlaskResponse) and resp.is_streamed:
            # A stream (the live log's Server-Sent Events) is its own answer: checking it would read it to its
            # end before the first byte left, and it has no schema to check against.
            return resp, None
        if current_app.config.get("VALIDATE_RESPONSES", True):
            return super().validate_response(resp, resp_model, skip_validation, force_resp_serialize)
        # Unchecked, spectree would still walk the whole body looking for pydantic instances to serialise
        # (a list page: some 3000 calls); our routes answer plain dicts, lists and responses, which Flask makes.
        return make_response(resp), None


spec = SpecTree(
    "flask",
    backend=_Plugin,
    title="Proxmox PaaS API",
    version="1.0.0",
    # Spectree leaves routes under its own path out of the document, so its pages live
    # under /api/docs; /api/openapi.json is served by the api blueprint.
    path="api/docs",
    filename="openapi.json",
    # Its pages (/api/docs/swagger/, /api/docs/redoc/) on the vendored assets, never a CDN.
    page_templates=PAGE_TEMPLATES,
    annotations=True,
    mode="strict",
    before=_raise_validation_error,
    after=_hide_response_validation_error,
    validation_error_model=ErrorResponse,
    naming_strategy=component_name,
    # Every operation needs a bearer token unless it says otherwise (security={}: the public ones).
    security_schemes=[SecurityScheme(name="bearer", data=SecuritySchemeData(
        type="http", scheme="bearer", description="An API token: paas_..."))],
    security={"bearer": []},
)



# Answers any operation can give, documented once here rather than on every route.
_COMMON = {"429": "Too many requests (see Retry-After)"}
_AUTHENTICATED = {"401": "No valid API token"}
_WITH_BODY = {"400": "Malformed JSON", "413": "Body too large", "415": "Body not sent as JSON",
              "422": "The body is not a JSON object"}


def openapi_document():
    """The OpenAPI document with the cross-cutting answers (401, 429, 400/413/415 for bodies) added."""
    document = spec.spec
    error_ref = {"$ref": f"#/components/schemas/{_error_schema_key(document)}"}
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            extra = dict(_COMMON) if path != "/health" else {}
            if operation.get("security") != []:
                extra.update(_AUTHENTICATED)
            if "requestBody" in operation or method.upper() in ("POST", "PUT", "PATCH", "DELETE"):
                extra.update(_WITH_BODY)  # api_bp's body guard answers these on every route a body can reach
            for code, description in extra.items():
                operation["responses"].setdefault(code, {
                    "description": description, "content": {"application/json": {"schema": error_ref}}})
    return document


def _error_schema_key(document):
    for key in document.get("components", {}).get("schemas", {}):
        if key.split(".")[0] == "ErrorResponse":
            return key
    raise LookupError("ErrorResponse is not in the OpenAPI document")
