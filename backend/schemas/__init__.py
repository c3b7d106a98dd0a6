"""The API's request and response schemas, one module per resource: the single source of validation, of the
OpenAPI document and of every JSON shape the platform gives out (the output schemas read model rows through
from_attributes; dump() in common turns one into JSON).

A leaf: these modules import pydantic, the standard library and pure domain modules (backend.rules,
backend.status) only, never backend.models, so the models can serialise through them.
"""
