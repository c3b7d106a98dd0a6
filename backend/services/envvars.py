"""The user's environment variables: validated, encrypted at rest with Fernet, shown masked.

The key comes from configuration (ENV_ENCRYPTION_KEY, or instance/env.key generated on first run
with mode 0600), never from the database, so a stolen database dump reveals no secrets.
"""
import json
import logging
import os
import re
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app

from backend.errors import DomainError, ValidationFailed

log = logging.getLogger(__name__)
KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
MAX_VARIABLES = 200
MAX_VALUE = 32 * 1024
# Names the platform sets itself for the app.
RESERVED = {"PORT", "HOST", "PATH", "HOME"}
MASK = "********"
_fernets = {}


class SecretsUnavailable(DomainError):
    """The stored variables cannot be decrypted with the configured key."""

    status = 503
    code = "secrets_unavailable"


def _key_file(app):
    return Path(app.instance_path) / "env.key"


def _load_key(app):
    configured = app.config.get("ENV_ENCRYPTION_KEY")
    if configured:
        return configured.encode() if isinstance(configured, str) else configured
    path = _key_file(app)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole under another name, then linked into place: another process (the compose api and
        # worker share instance/) either wins the link or reads a complete key, never an empty file.
        tmp = path.with_name(f".env.key.{os.getpid()}.{secrets.token_hex(6)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(Fernet.generate_key())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: its key is the one
        else:
            log.warning("generated an encryption key for environment variables at %s; back it up, "
                        "or set ENV_ENCRYPTION_KEY (without it the stored variables cannot be read)", path)
        finally:
            tmp.unlink()
    return path.read_bytes().strip()


def fernet(app=None):
    app = app or current_app
    key = _load_key(app)
    if key not in _fernets:
        try:
            _fernets[key] = Fernet(key)
        except ValueError:
            raise RuntimeError("ENV_ENCRYPTION_KEY is not a Fernet key (32 url-safe base64-encoded bytes); "
                               "make one with: python -c 'from cryptography.fernet import Fernet; "
                               "print(Fernet.generate_key().decode())'") from None
    return _fernets[key]


def encrypt(variables):
    if not variables:
        return None
    return fernet().encrypt(json.dumps(variables, sort_keys=True).encode()).decode()


def decrypt(token):
    if not token:
        return {}
    try:
        return json.loads(fernet().decrypt(token.encode()))
    except InvalidToken:
        raise SecretsUnavailable("the environment variables cannot be decrypted with the configured key "
                                 "(ENV_ENCRYPTION_KEY changed?)") from None


def masked(token):
    """Keys with masked values, for responses."""
    return dict.fromkeys(sorted(decrypt(token)), MASK)


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


def seal(secret):
    """Encrypt one secret (a webhook or notification key) with the same key as the variables."""
    return fernet().encrypt(secret.encode()).decode()


def unseal(token):
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretsUnavailable("a stored secret cannot be decrypted with the configured key "
                                 "(ENV_ENCRYPTION_KEY changed?)") from None
