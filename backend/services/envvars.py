"""The user's environment variables: validated, merged, redacted from output; encrypted at rest and shown
masked through backend/models/sealed.py (whose names are used from here by the services)."""
import re

from backend.errors import ValidationFailed
from backend.models.sealed import (  # noqa: F401 - the environment's services use the store through here
    MASK,
    SecretsUnavailable,
    decrypt,
    encrypt,
    fernet,
    masked,
    seal,
    unseal,
)

KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
MAX_VARIABLES = 200
MAX_VALUE = 32 * 1024
# Names the platform sets itself for the app.
RESERVED = {"PORT", "HOST", "PATH", "HOME"}


def check_key(key):
    if not isinstance(key, str) or not KEY_RE.fullmatch(key):
        raise ValueError(f"{str(key)[:40]!r} is not a variable name: letters, digits and '_', "
                         "not starting with a digit, at most 128")
    if key in RESERVED:
        raise ValueError(f"{key} is set by the platform")
    return key


def check_value(key, value):
    if not isinstance(value, str):
        raise ValueError(f"the value of {key} must be a string")
    if len(value) > MAX_VALUE:
        raise ValueError(f"the value of {key} is longer than {MAX_VALUE} characters")
    if any(c in value for c in "\n\r\0"):
        raise ValueError(f"the value of {key} must not hold a line break or NUL")
    return value


def validate(variables, *, allow_null=False):
    """Check a {key: value} mapping from the API; field errors are keyed env.<KEY>."""
    errors = {}
    for key, value in variables.items():
        try:
            check_key(key)
            if value is None and allow_null:
                continue
            check_value(key, value)
        except ValueError as exc:
            errors[f"env.{str(key)[:128]}"] = str(exc)
    if errors:
        raise ValidationFailed("invalid environment variables", fields=errors)
    return variables


def merged(token, changes):
    """The stored variables with changes applied (a None value deletes the key)."""
    current = decrypt(token)
    for key, value in changes.items():
        if value is None:
            current.pop(key, None)
        else:
            current[key] = value
    if len(current) > MAX_VARIABLES:
        raise ValidationFailed(f"at most {MAX_VARIABLES} environment variables", fields={"env": "too many"})
    return current


def redactor(variables):
    """A function that replaces every secret value in a line of output with a mask."""
    secrets = sorted((v for v in variables.values() if len(v) >= 4), key=len, reverse=True)
    if not secrets:
        return lambda line: line
    pattern = re.compile("|".join(re.escape(s) for s in secrets))
    return lambda line: pattern.sub(MASK, line)
