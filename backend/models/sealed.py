"""Secrets at rest: the user's environment and the platform's webhook and notification keys, encrypted with
Fernet under a key from configuration (ENV_ENCRYPTION_KEY, or instance/env.key generated on first run with
mode 0600), never from the database, so a stolen database dump reveals no secrets.

Rows keep only the tokens; services encrypt and decrypt through here (backend/services/envvars.py for the
environment's rules).
"""
import json
import logging
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app

from backend.errors import DomainError

log = logging.getLogger(__name__)
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


def seal(secret):
    """Encrypt one secret (a webhook or notification key) with the same key as the variables."""
    return fernet().encrypt(secret.encode()).decode()


def unseal(token):
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretsUnavailable("a stored secret cannot be decrypted with the configured key "
                                 "(ENV_ENCRYPTION_KEY changed?)") from None
