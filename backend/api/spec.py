"""The OpenAPI document and request validation, both generated from the pydantic schemas."""
from spectree import SpecTree

from backend.api.schemas import ErrorResponse
from backend.api.validation import validation_failed_from_pydantic


def _raise_validation_error(request, response, error, instance, *args):
    """Spectree hook: replace its own 422 body with our error shape."""
    if error is not None:
        raise validation_failed_from_pydantic(error)


spec = SpecTree(
    "flask",
    title="Proxmox PaaS API",
    version="1.0.0",
    # Spectree leaves routes under its own path out of the document, so its pages live
    # under /api/docs; /api/openapi.json is served by the api blueprint.
    path="api/docs",
    filename="openapi.json",
    annotations=True,
    mode="strict",
    before=_raise_validation_error,
    validation_error_model=ErrorResponse,
)

