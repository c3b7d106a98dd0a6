"""Turning pydantic's errors into our per-field messages (the API's error body, the dashboard's forms)."""
from backend.errors import ValidationFailed


def _field_path(loc):
    return ".".join(str(part) for part in loc) or "body"


def _message(error):
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "is required"
    message = error.get("msg", "is invalid")
    # pydantic prefixes messages raised in our validators with "Value error, ".
    return message.removeprefix("Value error, ")


def validation_failed_from_pydantic(exc):
    """One ValidationFailed carrying a message per field path (first error wins per field)."""
    fields = {}
    for error in exc.errors():
        fields.setdefault(_field_path(error.get("loc", ())), _message(error))
    return ValidationFailed("the request is not valid", fields=fields)
