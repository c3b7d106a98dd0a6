"""What every resource's schemas share: the field types backed by backend/rules.py, strict bodies, the error shape."""
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

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
# Bounds of the database's id columns: larger numbers in a query would overflow them (a 500 instead of a page).
MAX_ID = 2**63 - 1
MAX_VERSION = 2**31 - 1


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
