"""What every resource's schemas share: the field types backed by backend/rules.py, strict bodies, the error shape,
and dump(), which gives a row out in its output schema's JSON shape."""
import uuid
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from backend.rules import (
    MAX_TAGS,
    check_branch,
    check_command,
    check_commit,
    check_framework,
    check_github_url,
    check_health_path,
    check_name,
    check_tags,
)

Name = Annotated[str, AfterValidator(check_name)]
GithubUrl = Annotated[str, AfterValidator(check_github_url)]
Branch = Annotated[str, AfterValidator(check_branch)]
FrameworkKey = Annotated[str, AfterValidator(check_framework)]
Tags = Annotated[list[str], Field(max_length=MAX_TAGS), AfterValidator(check_tags)]
Command = Annotated[str, AfterValidator(check_command)]
Commit = Annotated[str, AfterValidator(check_commit)]
HealthPath = Annotated[str, AfterValidator(check_health_path)]


def _uuid_as_text(value):
    return str(value) if isinstance(value, uuid.UUID) else value


# A UUID column read from a row (from_attributes), given out as its text.
UuidText = Annotated[str, BeforeValidator(_uuid_as_text)]

# Bounds of the database's id columns: larger numbers in a query would overflow them (a 500 instead of a page).
MAX_ID = 2**63 - 1
MAX_VERSION = 2**31 - 1


class SchemaMismatch(Exception):
    """Something the platform gives out does not fit its output schema: our bug, a 500 (a pydantic ValidationError
    would be answered as the client's 422). The message says where and how, never the values."""


def dump(schema, obj, **options):
    """obj (a row, or anything with the schema's fields as attributes or keys) as JSON-ready data in the shape of
    schema, an output schema with from_attributes. Times come out as ISO 8601, UTC as Z, microseconds when any.
    options go to model_dump (exclude=...)."""
    try:
        return schema.model_validate(obj).model_dump(mode="json", **options)
    except ValidationError as exc:
        problems = exc.errors(include_url=False, include_input=False)
        where = "; ".join(f"{'.'.join(map(str, p['loc'])) or 'value'}: {p['msg']}" for p in problems)
        raise SchemaMismatch(f"{schema.__name__} refuses what it was given: {where}") from None


class StrictModel(BaseModel):
    """JSON bodies: unknown fields rejected, no silent type coercion."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ErrorDetail(BaseModel):
    code: str
    message: str
    fields: dict[str, str] = Field(default_factory=dict)
    request_id: str | None = None


class ErrorResponse(BaseModel):
    success: Literal[False]
    error: ErrorDetail
